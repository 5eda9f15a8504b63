"""Request body -> image bytes, the one parser both front doors use, so that Lambda and Flask accept
exactly the same requests: raw image bytes, JSON with base64, or a multipart form."""

from __future__ import annotations

import base64
import binascii
import io
import json

from werkzeug.formparser import parse_form_data

from inference import errors

RAW_TYPES = ("image/", "application/octet-stream")


def _b64(value: object) -> bytes:
    if not isinstance(value, str) or not value:
        raise errors.invalid_base64()
    if value.startswith("data:"):
        value = value.split(",", 1)[-1]
    try:  # whitespace is allowed inside base64 (RFC 2045): GNU base64 wraps its output at 76 columns
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise errors.invalid_base64() from error


def images_from_json(body: bytes, *, batch: bool) -> list[bytes]:
    """``{"image": b64}`` (or ``{"images": [b64, ...]}`` for a batch; one ``image`` is accepted too)."""
    try:
        document = json.loads(body)
    except RecursionError as error:  # nesting deeper than Python's parser recurses
        raise errors.invalid_json("nested too deeply") from error
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError, and an integer of over 4,300 digits
        raise errors.invalid_json(str(error)[:200]) from error
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


def images_from_form(content_type: str, body: bytes, *, batch: bool) -> list[bytes]:
    """The ``image`` files of a multipart form (any file, if none is called ``image``)."""
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    try:
        _, _, files = parse_form_data(environ, silent=False)
    except ValueError as error:  # a boundary that is missing or never closes
        raise errors.ServingError("invalid_multipart", f"the multipart form cannot be read ({error})") from error
    images = [f.read() for f in files.getlist("image") or list(files.values())]
    if not images:
        raise errors.ServingError("missing_image", 'the multipart form has no "image" file')
    return images if batch else images[:1]


def images_from_body(content_type: str | None, body: bytes, *, batch: bool = False) -> list[bytes]:
    """Raw image bytes (``image/*``, octet-stream), JSON or a multipart form; anything else is a 415.
    ``content_type`` is the whole header: a multipart form needs its boundary."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if not body:
        raise errors.empty_body()
    if kind == "application/json":
        return images_from_json(body, batch=batch)
    if kind == "multipart/form-data":
        return images_from_form(content_type or "", body, batch=batch)
    if kind.startswith(RAW_TYPES) or kind == "":
        return [body]
    raise errors.unsupported_media_type(kind)
