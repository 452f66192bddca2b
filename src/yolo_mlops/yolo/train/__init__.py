"""Training: the trainer, epoch loop, state, optimizer, EMA, loss, label assignment, DDP."""
