"""The Lambda front door: API Gateway proxy events (REST v1 and HTTP v2) -> the shared predictor.

The model loads once per execution environment, at import (the init phase); a model replaced on
EFS is picked up at the next cold start. Logs are structured JSON (powertools Logger); latency,
errors and the cold start go out as CloudWatch metrics (powertools Metrics, EMF).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from inference import errors
from inference.explain import explain
from inference.payloads import images_from_body
from inference.service import ModelHolder, ServingConfig

_started = time.perf_counter()
logger = Logger(service="mhist-inference")
metrics = Metrics(namespace="MHIST", service="mhist-inference")
config = ServingConfig.from_env()
holder = ModelHolder(config)  # the seeds' "pre-loading": once per environment, not per request
INIT_SECONDS = time.perf_counter() - _started
logger.info("init done", extra={"init_seconds": round(INIT_SECONDS, 3), "model_error": holder.error or None})
_cold = True


def _request(event: dict[str, Any]) -> tuple[str, str, str, bytes]:
    """(method, path, content type, body bytes) from a v1 or v2 proxy event."""
    if event.get("version") == "2.0":
        method, path = event["requestContext"]["http"]["method"], event.get("rawPath", "/")
    else:
        method, path = event.get("httpMethod", "GET"), event.get("path", "/")
    # REST events may carry only multiValueHeaders; header names are case-insensitive
    multi = {k.lower(): values[-1] for k, values in (event.get("multiValueHeaders") or {}).items() if values}
    headers = multi | {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    stage = (event.get("requestContext") or {}).get("stage")
    if stage and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :]
    return method.upper(), path.rstrip("/") or "/", headers.get("content-type", ""), raw


def _response(status: int, document: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(document),
        "isBase64Encoded": False,
    }


def _images(content_type: str, body: bytes, *, batch: bool) -> list[bytes]:
    if len(body) > (limit := config.limits.body_limit(batch=batch)):  # as Flask refuses by Content-Length
        raise errors.payload_too_large(len(body), limit)
    return images_from_body(content_type, body, batch=batch)


def _predict(content_type: str, body: bytes, *, batch: bool) -> dict[str, Any]:
    started = time.perf_counter()
    predictions = holder.get().predict(_images(content_type, body, batch=batch))
    if not batch:
        return predictions[0]
    return {"predictions": predictions, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


ROUTES = {  # the same routes as inference/server.py
    ("GET", "/health"): lambda _type, _body: {"status": "ok"},
    ("GET", "/ready"): lambda _type, _body: holder.readiness(),
    ("GET", "/metadata"): lambda _type, _body: holder.get().card(),
    ("POST", "/predict"): lambda content_type, body: _predict(content_type, body, batch=False),
    ("POST", "/predict/batch"): lambda content_type, body: _predict(content_type, body, batch=True),
    ("POST", "/explain"): lambda content_type, body: explain(holder.get(), *_images(content_type, body, batch=False)),
}


def route(method: str, path: str, content_type: str, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, document, extra headers) for one request."""
    if (method, path) in ROUTES:
        return 200, ROUTES[method, path](content_type, body), {}
    allowed = sorted(m for m, p in ROUTES if p == path)
    if allowed:
        error = errors.ServingError("method_not_allowed", f"{path} takes {', '.join(allowed)}, not {method}", 405)
        return 405, error.body(), {"Allow": ", ".join(allowed)}
    return 404, errors.ServingError("not_found", f"no route for {method} {path}", 404).body(), {}


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _cold
    started = time.perf_counter()
    cold, _cold = _cold, False
    headers: dict[str, str] = {}
    try:
        status, document, headers = route(*_request(event))
    except errors.ServingError as error:
        status, document = error.status, error.body()
    except Exception:
        logger.exception("unexpected error")
        status, document = 500, {"error": {"code": "internal_error", "message": "the function failed; see its log"}}
    latency_ms = (time.perf_counter() - started) * 1000
    metrics.add_metric(name="LatencyMs", unit=MetricUnit.Milliseconds, value=latency_ms)
    if status >= 400:
        metrics.add_metric(name="Errors" if status >= 500 else "Refusals", unit=MetricUnit.Count, value=1)
    served = holder.predictor
    model = {"model": served.name, "model_version": served.version} if served else {}
    logger.info(
        "request",
        extra={
            "status": status,
            "latency_ms": round(latency_ms, 2),
            "cold_start": cold,
            "init_seconds": round(INIT_SECONDS, 3) if cold else None,
            **model,
        },
    )
    return _response(status, document, headers)
