"""Every refusal has a code and an HTTP status; both front doors map them in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inference.responses import ErrorBody, Refusal


class ServingError(Exception):
    """A request the service refuses, or a model it cannot serve; never a stack trace to a client."""

    def __init__(self, code: str, message: str, status: int = 400, detail: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.detail = detail or message  # the reason alone, for a caller that words its own message

    def body(self) -> dict[str, Any]:
        return ErrorBody(error=Refusal(code=self.code, message=self.message)).model_dump()


def empty_body() -> ServingError:
    return ServingError("empty_body", 'the request has no image: send the image bytes or JSON {"image": <base64>}')


def invalid_image(detail: str) -> ServingError:
    return ServingError("invalid_image", f"the body is not a readable image ({detail})")


def payload_too_large(size: int, limit: int) -> ServingError:
    return ServingError("payload_too_large", f"the body is {size} bytes; the limit is {limit}", 413)


def image_too_large(pixels: int, limit: int) -> ServingError:
    return ServingError("image_too_large", f"the image has {pixels} pixels; the limit is {limit}", 413)


def image_too_large_to_decode() -> ServingError:
    return ServingError("image_too_large", "the image is too large to decode safely", 413)


def request_too_large(pixels: int, limit: int) -> ServingError:
    return ServingError(
        "request_too_large", f"the images hold {pixels} pixels together; one request may hold {limit}", 413
    )


def too_many_images(count: int, limit: int) -> ServingError:
    return ServingError("too_many_images", f"{count} images in one batch; the limit is {limit}", 413)


def unsupported_media_type(content_type: str) -> ServingError:
    return ServingError(
        "unsupported_media_type",
        f"content type {content_type!r} is not accepted: send image/* bytes, multipart/form-data or application/json",
        415,
    )


def invalid_json(detail: str) -> ServingError:
    return ServingError("invalid_json", f"the JSON body is not usable ({detail})")


def invalid_base64() -> ServingError:
    return ServingError("invalid_base64", "the image field is not valid base64")


def model_not_ready(detail: str) -> ServingError:
    return ServingError("model_not_ready", f"no model is loaded ({detail})", 503, detail)


def unwritable_reason(path: Path, error: OSError) -> str:
    """Why ``path`` could not be made or written, for a one-line refusal: the file standing where one of
    its folders belongs ("Not a directory" names neither), or the system's reason."""
    blocker = next((p for p in Path(path).parents if p.exists() and not p.is_dir()), None)
    return f"{blocker} is a file" if blocker else error.strerror or str(error)
