"""What every trained model shares: checkpoints, the device mesh, metric writers, progress."""
