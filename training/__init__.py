"""Training for the MHIST classifiers: data, networks, the LightningModule, callbacks, the CLI."""

import inference  # noqa: F401 - first, for its MLflow telemetry default: before any module here imports mlflow
