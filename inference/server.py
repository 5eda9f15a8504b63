"""The EC2 service: a Flask app factory over the shared predictor; gunicorn runs it.

    gunicorn -c inference/gunicorn_conf.py        # MODEL_ROOT, MODEL_NAME from the environment

Routes: POST /predict, POST /predict/batch, GET /health, GET /ready, GET /metadata, GET /openapi.json.
Errors map to DESIGN.md's ``{"error": {"code", "message"}}`` in one place; never a stack trace.
"""

from __future__ import annotations

import logging
import signal
import time

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from inference import errors, openapi
from inference.payloads import images_from_body
from inference.service import ModelHolder, ServingConfig

log = logging.getLogger(__name__)


def request_images(*, batch: bool) -> list[bytes]:
    """Multipart uploads here; raw bytes and JSON through the parser the Lambda shares."""
    if request.mimetype == "multipart/form-data":
        files = [f.read() for f in request.files.getlist("image") or list(request.files.values())]
        if not files:
            raise errors.ServingError("missing_image", 'the multipart form has no "image" file')
        return files if batch else files[:1]
    return images_from_body(request.mimetype, request.get_data(cache=False), batch=batch)


def create_app(config: ServingConfig | None = None) -> Flask:
    config = config or ServingConfig.from_env()
    holder = ModelHolder(config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.limits.max_bytes * config.limits.max_batch + 64 * 1024
    app.extensions["model_holder"] = holder
    signal.signal(signal.SIGHUP, lambda *_: holder.reload(force=True))  # in each worker

    @app.errorhandler(errors.ServingError)
    def serving_error(error: errors.ServingError) -> tuple[Response, int]:
        return jsonify(error.body()), error.status

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_: RequestEntityTooLarge) -> tuple[Response, int]:
        error = errors.payload_too_large(request.content_length or 0, app.config["MAX_CONTENT_LENGTH"])
        return jsonify(error.body()), 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        code = (error.name or "http_error").lower().replace(" ", "_")
        return jsonify({"error": {"code": code, "message": error.description}}), error.code or 500

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify({"error": {"code": "internal_error", "message": "the server failed; see its log"}}), 500

    @app.post("/predict")
    def predict() -> Response:
        return jsonify(holder.get().predict(request_images(batch=False))[0])

    @app.post("/predict/batch")
    def predict_batch() -> Response:
        started = time.perf_counter()
        predictions = holder.get().predict(request_images(batch=True))
        return jsonify({"predictions": predictions, "latency_ms": round((time.perf_counter() - started) * 1000, 2)})

    @app.get("/health")
    def health() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/ready")
    def ready() -> Response:
        predictor = holder.get()
        return jsonify({"status": "ready", "model": predictor.name, "model_version": predictor.version})

    @app.get("/metadata")
    def metadata() -> Response:
        return jsonify(holder.get().card())

    @app.get("/openapi.json")
    def openapi_json() -> Response:
        return jsonify(openapi.document())

    return app
