"""Training with Lightning: the run config, the thin LightningModule, the `train` command."""
