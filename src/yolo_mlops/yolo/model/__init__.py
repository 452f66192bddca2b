"""The YOLO11 network: building blocks, the model, anchors, decoding and post-processing."""
