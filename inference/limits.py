"""What one request may cost the service, in one place: bytes, images and decoded pixels.

Standard library only (the gunicorn arbiter reads the defaults). Every limit is checked before
the work it bounds: a body by its length before it is read, a batch's pixels from the image headers
before any image is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
FORM_OVERHEAD = 64 * 1024  # JSON keys, multipart headers and boundaries around the image


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 10 * MIB  # one image, as sent
    max_batch: int = 32  # images in one request
    max_pixels: int = 25_000_000  # one image, decoded: 5,000 x 5,000
    max_request_bytes: int = 64 * MIB  # a batch's whole body
    max_request_pixels: int = 64_000_000  # a request's images together, decoded

    def body_limit(self, *, batch: bool) -> int:
        """The largest body a route reads: one image as base64 in JSON (4/3 of its bytes), or a batch."""
        return self.max_request_bytes if batch else self.max_bytes * 4 // 3 + FORM_OVERHEAD
