"""Serving: one onnxruntime predictor behind a Lambda handler and a Flask/gunicorn service. No torch."""
