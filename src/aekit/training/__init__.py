"""Training: the one Trainer, its configuration, checkpoints, distributed runs and run folders."""
