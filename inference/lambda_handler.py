"""The Lambda front door: API Gateway proxy events -> the shared predictor, routed by powertools'
resolvers (the REST API's v1 events; an HTTP API's v2 events take the same routes).

The model loads once per execution environment, at import (the init phase); a model replaced on
EFS is picked up at the next cold start. Logs are structured JSON (powertools Logger, which marks
the cold start); latency, errors and the cold start go out as CloudWatch metrics (powertools
Metrics, EMF). Refusals are ``ServingError``s, answered by one exception handler.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.metrics import MetricUnit

from inference import errors
from inference.explain import explain
from inference.payloads import images_from_body
from inference.responses import Predictions, Status
from inference.service import ModelHolder, ServingConfig

_started = time.perf_counter()
logger = Logger(service="mhist-inference")
metrics = Metrics(namespace="MHIST", service="mhist-inference")
config = ServingConfig.from_env()
holder = ModelHolder(config)  # the seeds' "pre-loading": once per environment, not per request
INIT_SECONDS = time.perf_counter() - _started
logger.info("init done", extra={"init_seconds": round(INIT_SECONDS, 3), "model_error": holder.error or None})


def _request(app: ApiGatewayResolver, *, batch: bool) -> list[bytes]:
    """The request's images, its body refused by its length first (as Flask refuses by Content-Length)."""
    event = app.current_event
    raw = base64.b64decode(event.body or "") if event.is_base64_encoded else (event.body or "").encode()
    if len(raw) > (limit := config.limits.body_limit(batch=batch)):
        raise errors.payload_too_large(len(raw), limit)
    content_type = event.headers.get("content-type")
    if content_type is None:  # a REST event may carry only multiValueHeaders
        multi = {k.lower(): v[-1] for k, v in (event.get("multiValueHeaders") or {}).items() if v}
        content_type = multi.get("content-type", "")
    return images_from_body(content_type, raw, batch=batch)


def _predict(app: ApiGatewayResolver, *, batch: bool) -> dict[str, Any]:
    started = time.perf_counter()
    predictions = holder.get().predict(_request(app, batch=batch))
    if not batch:
        return predictions[0]
    return Predictions(
        predictions=predictions, latency_ms=round((time.perf_counter() - started) * 1000, 2)
    ).model_dump()


ROUTES: dict[tuple[str, str], Callable[[ApiGatewayResolver], dict[str, Any]]] = {  # inference/server.py's routes
    ("GET", "/health"): lambda _app: Status(status="ok").model_dump(),
    ("GET", "/ready"): lambda _app: holder.readiness(),
    ("GET", "/metadata"): lambda _app: holder.get().card(),
    ("POST", "/predict"): lambda app: _predict(app, batch=False),
    ("POST", "/predict/batch"): lambda app: _predict(app, batch=True),
    ("POST", "/explain"): lambda app: explain(holder.get(), *_request(app, batch=False)),
}


def _json(status: int, document: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status, "application/json", json.dumps(document), headers or {})


def _measured(app: ApiGatewayResolver, next_middleware: NextMiddleware) -> Response:
    """Every request's latency and outcome as metrics, and one log line with the model that answered. A
    refusal passes through here as its exception (the resolver's handlers answer it after)."""
    started, status = time.perf_counter(), 500
    try:
        response = next_middleware(app)
        status = response.status_code
        return response
    except errors.ServingError as error:
        status = error.status
        raise
    finally:
        latency_ms = (time.perf_counter() - started) * 1000
        metrics.add_metric(name="LatencyMs", unit=MetricUnit.Milliseconds, value=latency_ms)
        if status >= 400:
            metrics.add_metric(name="Errors" if status >= 500 else "Refusals", unit=MetricUnit.Count, value=1)
        served = holder.predictor
        model = {"model": served.name, "model_version": served.version} if served else {}
        extra = {"status": status, "latency_ms": round(latency_ms, 2), "init_seconds": round(INIT_SECONDS, 3)}
        logger.info("request", extra=extra | model)


def _resolver(kind: type[ApiGatewayResolver]) -> ApiGatewayResolver:
    app = kind()
    for (method, path), answer in ROUTES.items():
        app.route(path, method=method)(lambda answer=answer: answer(app))
    app.use(middlewares=[_measured])

    @app.exception_handler(errors.ServingError)
    def refused(error: errors.ServingError) -> Response:
        return _json(error.status, error.body())

    @app.not_found
    def not_found(_: NotFoundError) -> Response:
        path = app.current_event.path.rstrip("/") or "/"
        allowed = sorted(m for m, p in ROUTES if p == path)
        if allowed:
            method = app.current_event.http_method
            refusal = errors.ServingError("method_not_allowed", f"{path} takes {', '.join(allowed)}, not {method}", 405)
            return _json(405, refusal.body(), {"Allow": ", ".join(allowed)})
        return _json(404, errors.ServingError("not_found", f"no route for {path}", 404).body())

    @app.exception_handler(Exception)
    def failed(_: Exception) -> Response:
        logger.exception("unexpected error")
        return _json(500, {"error": {"code": "internal_error", "message": "the function failed; see its log"}})

    return app


REST, HTTP = _resolver(APIGatewayRestResolver), _resolver(APIGatewayHttpResolver)


def _normalized(event: dict[str, Any]) -> dict[str, Any]:
    """The route's path without a trailing slash or the stage (a custom domain's mapping leaves it on)."""
    key = "rawPath" if event.get("version") == "2.0" else "path"
    path = event.get(key) or "/"
    stage = (event.get("requestContext") or {}).get("stage")
    if stage and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :]
    return {**event, key: path.rstrip("/") or "/"}


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return (HTTP if event.get("version") == "2.0" else REST).resolve(_normalized(event), context)
