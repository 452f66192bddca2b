"""Checkpoints: our format, the Ultralytics import, conversion."""
