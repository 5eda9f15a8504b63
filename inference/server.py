"""The EC2 service: a Flask app factory over the shared predictor; gunicorn runs it, behind nginx.

    gunicorn -c inference/gunicorn_conf.py        # MODEL_ROOT, MODEL_NAME from the environment

Routes: POST /predict, POST /predict/batch, POST /explain, GET /health, GET /ready, GET /metadata, GET /openapi.json.
Errors map to DESIGN.md's ``{"error": {"code", "message"}}`` in one place; never a stack trace. Each
request is one JSON log line with its id (nginx's ``X-Request-Id``), status, latency and model.
"""

from __future__ import annotations

import logging
import signal
import time
import uuid

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from inference import errors, logs, openapi
from inference.explain import explain
from inference.payloads import images_from_body
from inference.responses import Predictions, Status
from inference.service import ModelHolder, ServingConfig

log = logging.getLogger(__name__)


def create_app(config: ServingConfig | None = None) -> Flask:
    logs.configure()
    config = config or ServingConfig.from_env()
    holder = ModelHolder(config)
    limits = config.limits
    app = Flask(__name__)
    app.url_map.strict_slashes = False  # /predict/ is /predict, as on the Lambda
    app.extensions["model_holder"] = holder
    signal.signal(signal.SIGHUP, lambda *_: holder.reload(force=True))  # in each worker

    def images(*, batch: bool) -> list[bytes]:
        request.max_content_length = limits.body_limit(batch=batch)  # refused by its length, before reading
        return images_from_body(request.content_type, request.get_data(cache=False), batch=batch)

    @app.before_request
    def start() -> None:
        g.started = time.perf_counter()
        g.request_id = (request.headers.get("X-Request-Id") or uuid.uuid4().hex)[:128]  # nginx sets one

    @app.after_request
    def record(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.request_id
        fields = {
            "request_id": g.request_id,
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "latency_ms": round((time.perf_counter() - g.started) * 1000, 2),
            "client": request.headers.get("X-Real-IP") or request.remote_addr,
        }
        if holder.predictor is not None:
            fields |= {"model": holder.predictor.name, "model_version": holder.predictor.version}
        log.info("request", extra={logs.FIELDS: fields})
        return response

    @app.errorhandler(errors.ServingError)
    def serving_error(error: errors.ServingError) -> tuple[Response, int]:
        return jsonify(error.body()), error.status

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_: RequestEntityTooLarge) -> tuple[Response, int]:
        error = errors.payload_too_large(request.content_length or 0, request.max_content_length or 0)
        return jsonify(error.body()), 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int, list[tuple[str, str]]]:
        code = (error.name or "http_error").lower().replace(" ", "_")
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]  # a 405's Allow
        return jsonify(errors.ServingError(code, error.description or "").body()), error.code or 500, headers

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify(errors.ServingError("internal_error", "the server failed; see its log").body()), 500

    @app.post("/predict")
    def predict() -> Response:
        return jsonify(holder.get().predict(images(batch=False))[0])

    @app.post("/predict/batch")
    def predict_batch() -> Response:
        started = time.perf_counter()
        predictions = holder.get().predict(images(batch=True))
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return jsonify(Predictions(predictions=predictions, latency_ms=latency_ms).model_dump())

    @app.post("/explain")
    def explain_route() -> Response:
        (image,) = images(batch=False)
        return jsonify(explain(holder.get(), image))

    @app.get("/health")
    def health() -> Response:
        return jsonify(Status(status="ok").model_dump())

    @app.get("/ready")
    def ready() -> Response:
        return jsonify(holder.readiness())

    @app.get("/metadata")
    def metadata() -> Response:
        return jsonify(holder.get().card())

    @app.get("/openapi.json")
    def openapi_json() -> Response:
        return jsonify(openapi.document(limits))

    return app
