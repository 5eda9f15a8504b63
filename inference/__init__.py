"""Serving: one onnxruntime predictor behind a Lambda handler and a Flask/gunicorn service. No torch."""

import os

# MLflow 3 reports usage to its maintainers from ``import mlflow`` on, unless told not to. Every entry point
# imports this package before mlflow (training's through its own __init__); MLFLOW_DISABLE_TELEMETRY=false opts in.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
