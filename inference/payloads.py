"""Request body -> image bytes, for both front doors: raw image bytes, or JSON with base64."""

from __future__ import annotations

import base64
import binascii
import json

from inference import errors

RAW_TYPES = ("image/", "application/octet-stream")


def _b64(value: object) -> bytes:
    if not isinstance(value, str) or not value:
        raise errors.invalid_base64()
    try:
        return base64.b64decode(value.split(",", 1)[-1] if value.startswith("data:") else value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise errors.invalid_base64() from error


def images_from_json(body: bytes, *, batch: bool) -> list[bytes]:
    """``{"image": b64}`` (or ``{"images": [b64, ...]}`` for a batch; one ``image`` is accepted too)."""
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise errors.invalid_json(str(error)) from error
    if not isinstance(document, dict):
        raise errors.invalid_json("expected an object")
    if batch and "images" in document:
        if not isinstance(document["images"], list):
            raise errors.invalid_json('"images" must be a list of base64 strings')
        return [_b64(item) for item in document["images"]]
    if "image" not in document:
        key = '"images" (a list) or "image"' if batch else '"image"'
        raise errors.ServingError("missing_image", f"the JSON body has no {key} field")
    return [_b64(document["image"])]


def images_from_body(content_type: str | None, body: bytes, *, batch: bool = False) -> list[bytes]:
    """Raw image bytes (``image/*``, octet-stream) or JSON; anything else is a 415."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if not body:
        raise errors.empty_body()
    if kind == "application/json":
        return images_from_json(body, batch=batch)
    if kind.startswith(RAW_TYPES) or kind == "":
        return [body]
    raise errors.unsupported_media_type(kind)
