"""Training data: the image cache, letterbox, augmentation (mosaic, perspective, HSV), loaders."""
