"""The OpenAPI 3.0 document served at ``/openapi.json`` (and fuzzed by schemathesis in the tests)."""

from __future__ import annotations

from typing import Any

from inference.limits import Limits

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
PREDICTION = {
    "type": "object",
    "required": ["model", "probability", "label", "threshold", "in_distribution", "latency_ms"],
    "properties": {
        "model": {"type": "string"},
        "model_version": {"type": "string"},
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "label": {"type": "string"},
        "threshold": {"type": "number"},
        "in_distribution": {"type": "boolean"},
        "ood_score": {"type": "number", "nullable": True, "description": "distance / the guard's cut-off"},
        "ood_reason": {"type": "string", "nullable": True},
        "latency_ms": {"type": "number"},
    },
}
EXPLANATION = {
    "type": "object",
    "required": [*PREDICTION["required"], "explanation"],
    "properties": {
        **PREDICTION["properties"],
        "explanation": {
            "type": "object",
            "required": ["method", "grid", "map", "overlay_png", "latency_ms"],
            "properties": {
                "method": {"type": "string", "enum": ["attention rollout", "occlusion"]},
                "meaning": {"type": "string"},
                "grid": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
                "map": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                "overlay_png": {"type": "string", "format": "byte"},
                "latency_ms": {"type": "number"},
            },
        },
    },
}
IMAGE_BODY = {
    "required": True,
    "content": {
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {"image": {"type": "string", "format": "binary"}},
            }
        },
        "application/json": {
            "schema": {"type": "object", "required": ["image"], "properties": {"image": {"type": "string"}}}
        },
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "refused", "content": {"application/json": {"schema": ERROR}}} for c in codes}


def _ok(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"200": {"description": description, "content": {"application/json": {"schema": schema}}}}


def document(limits: Limits) -> dict[str, Any]:
    """The routes of both front doors, with this service's limits (a batch's size)."""
    images = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": limits.max_batch}
    batch = {
        "type": "object",
        "required": ["predictions"],
        "properties": {"predictions": {"type": "array", "items": PREDICTION}},
    }
    batch_body = {
        "required": True,
        "content": {
            "multipart/form-data": IMAGE_BODY["content"]["multipart/form-data"],
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["images"],
                    "properties": {"images": images},
                }
            },
        },
    }
    status = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "MHIST classifier", "version": "1.0", "description": "HP (negative) vs SSA (positive)"},
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Classify one image",
                    "requestBody": IMAGE_BODY,
                    "responses": {**_ok(PREDICTION, "the prediction"), **_errors(400, 413, 415, 503)},
                }
            },
            "/predict/batch": {
                "post": {
                    "summary": "Classify several images",
                    "requestBody": batch_body,
                    "responses": {**_ok(batch, "one prediction per image"), **_errors(400, 413, 415, 503)},
                }
            },
            "/explain": {
                "post": {
                    "summary": "Classify one image and show where the answer came from",
                    "requestBody": IMAGE_BODY,
                    "responses": {**_ok(EXPLANATION, "the prediction and its heatmap"), **_errors(400, 413, 415, 503)},
                }
            },
            "/health": {"get": {"summary": "The process is up", "responses": _ok(status, "up")}},
            "/ready": {"get": {"summary": "A model is loaded", "responses": {**_ok(status, "ready"), **_errors(503)}}},
            "/metadata": {
                "get": {
                    "summary": "The model card",
                    "responses": {**_ok({"type": "object"}, "the card"), **_errors(503)},
                }
            },
        },
    }
