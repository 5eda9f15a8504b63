"""Image bytes -> the model's input, in numpy and Pillow.

This is the serving twin of training's evaluation transform (``training/transforms.py``):
decode, EXIF orientation, first frame, any mode to 8-bit RGB, Pillow resize with the model's own
interpolation, scale to [0, 1], normalize with the model's own mean and std. A test holds the two
to 1e-5.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import numpy as np
from PIL import Image, ImageOps

from inference import errors
from inference.limits import Limits

Interpolation = Literal["nearest", "bilinear", "bicubic", "lanczos"]  # timm's names, torchvision's too
RESAMPLING: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
# round(v * 255 / 65535) for every 16-bit value: a lookup, not a float64 copy of a 16-bit image
SIXTEEN_TO_EIGHT = np.round(np.arange(65536) * 255.0 / 65535.0).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """First frame, EXIF orientation applied, any mode (RGBA, LA, L, P, CMYK, I;16, I, F) -> 8-bit RGB."""
    image.seek(0)
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I;16"):
        image = Image.fromarray(SIXTEEN_TO_EIGHT[np.asarray(image).astype(np.uint16, copy=False)], "L")
    elif image.mode in ("I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(np.round(array * 255.0 / peak), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)  # slides are white where nothing was scanned
    return image.convert("RGB")


@contextmanager
def _readable() -> Iterator[None]:
    """Pillow's errors as ServingErrors that say what was wrong with the bytes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise errors.image_too_large_to_decode() from error
    except Image.UnidentifiedImageError as error:  # its text names a BytesIO object, not the problem
        raise errors.invalid_image("its bytes are in no image format the service reads") from error
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise errors.invalid_image(str(error) or type(error).__name__) from error


def open_image(data: bytes, *, max_pixels: int = Limits.max_pixels) -> Image.Image:
    """Bytes -> an image whose header is read and whose pixels are not yet decoded."""
    if not data:
        raise errors.empty_body()
    with _readable():
        image = Image.open(io.BytesIO(data))
    width, height = image.size
    if width * height > max_pixels:
        raise errors.image_too_large(width * height, max_pixels)
    return image


def load(image: Image.Image) -> Image.Image:
    """An opened image, decoded to RGB."""
    with _readable():
        image.load()
        return to_rgb(image)


def decode(data: bytes, *, max_pixels: int = Limits.max_pixels) -> Image.Image:
    """Bytes -> RGB image, or a ServingError that says what was wrong with them."""
    return load(open_image(data, max_pixels=max_pixels))


def to_input(
    image: Image.Image,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    interpolation: Interpolation = "bilinear",
) -> np.ndarray:
    """RGB image -> float32 ``[3, size, size]``, normalized."""
    if image.size != (size, size):
        image = image.resize((size, size), RESAMPLING[interpolation])
    array = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    array = (array - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))
