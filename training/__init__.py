"""Training for the MHIST classifiers: data, networks, the LightningModule, callbacks, the CLI."""
