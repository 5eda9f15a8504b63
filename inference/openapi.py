"""The OpenAPI 3.1 document served at ``/openapi.json`` (and fuzzed by schemathesis in the tests).
Its response schemas are ``inference.responses``' models, the ones the answers are built through;
only the request bodies (image bytes in four encodings) are written here."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from inference.limits import Limits
from inference.responses import ErrorBody, ExplainedPrediction, Prediction, Predictions, Readiness, Status

REF = "#/components/schemas/{model}"
BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}  # 3.1's way to say "binary"
FORM = {"type": "object", "required": ["image"], "properties": {"image": BINARY}}


def _answer(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}},
    }


def _refusals(*codes: int) -> dict[str, Any]:
    return {str(code): _answer(ErrorBody, "refused: error.code says why") for code in codes}


def _post(summary: str, body: dict[str, Any], answer: type[BaseModel], description: str) -> dict[str, Any]:
    responses = {"200": _answer(answer, description), **_refusals(400, 413, 415, 503)}
    return {"post": {"summary": summary, "requestBody": {"required": True, "content": body}, "responses": responses}}


def _get(summary: str, answer: dict[str, Any], *refusals: int) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": answer, **_refusals(*refusals)}}}


def document(limits: Limits) -> dict[str, Any]:
    """The routes of both front doors, with this service's limits (a batch's size)."""
    models = (Prediction, ExplainedPrediction, Predictions, ErrorBody, Status, Readiness)
    _, schemas = models_json_schema([(m, "serialization") for m in models], ref_template=REF)
    image = {
        "image/png": {"schema": BINARY},
        "image/jpeg": {"schema": BINARY},
        "multipart/form-data": {"schema": FORM},
        "application/json": {
            "schema": {"type": "object", "required": ["image"], "properties": {"image": {"type": "string"}}}
        },
    }
    images = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": limits.max_batch}
    batch = {
        "multipart/form-data": {"schema": FORM},
        "application/json": {"schema": {"type": "object", "required": ["images"], "properties": {"images": images}}},
    }
    card = {"description": "the model card", "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "MHIST classifier", "version": "1.0", "description": "HP (negative) vs SSA (positive)"},
        "paths": {
            "/predict": _post("Classify one image", image, Prediction, "the prediction"),
            "/predict/batch": _post("Classify several images", batch, Predictions, "one prediction per image"),
            "/explain": _post(
                "Classify one image and show where the answer came from",
                image,
                ExplainedPrediction,
                "the prediction and its heatmap",
            ),
            "/health": _get("The process is up", _answer(Status, "up")),
            "/ready": _get("A model is loaded", _answer(Readiness, "ready"), 503),
            "/metadata": _get("The model card", card, 503),
        },
        "components": {"schemas": schemas["$defs"]},
    }
