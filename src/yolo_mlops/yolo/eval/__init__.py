"""Evaluation: validation loop, detection metrics, the COCO cross-check and report plots."""
