"""Serving's numpy/Pillow preprocessing against training's evaluation transform, and its guards."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from inference import errors
from inference.preprocessing import decode, to_input
from tests.conftest import REPO
from training.mhist import load_rgb
from training.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform

MEAN, STD = (0.86, 0.69, 0.82), (0.14, 0.17, 0.09)


def tissue(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def encoded(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def sixteen_bit(width: int, height: int) -> Image.Image:
    array = np.random.default_rng(3).integers(0, 65536, (height, width), dtype=np.uint16)
    return Image.fromarray(array)  # uint16 -> mode I;16


CASES = {
    "rgb-224-png": (lambda: tissue(224, 224), "PNG"),
    "rgb-300x200-png": (lambda: tissue(300, 200, 1), "PNG"),
    "rgb-64-jpeg": (lambda: tissue(64, 64, 2), "JPEG"),
    "rgba-250-png": (lambda: tissue(250, 250, 4).convert("RGBA"), "PNG"),
    "grey-180-png": (lambda: tissue(180, 180, 5).convert("L"), "PNG"),
    "palette-200-png": (lambda: tissue(200, 200, 6).convert("P"), "PNG"),
    "cmyk-230-jpeg": (lambda: tissue(230, 230, 7).convert("CMYK"), "JPEG"),
    "16bit-240-png": (lambda: sixteen_bit(240, 240), "PNG"),
    "rgb-512-tiff": (lambda: tissue(512, 512, 8), "TIFF"),
}


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_parity_with_the_training_transform(name: str, interpolation: str, tmp_path: Path) -> None:
    make, fmt = CASES[name]
    path = tmp_path / f"{name}.{fmt.lower()}"
    make().save(path, fmt)
    for mean, std in ((MEAN, STD), (IMAGENET_MEAN, IMAGENET_STD)):
        training = eval_transform(224, mean, std, interpolation)(load_rgb(path)).numpy()
        serving = to_input(decode(path.read_bytes()), 224, mean, std, interpolation)
        assert serving.dtype == np.float32
        assert serving.shape == training.shape == (3, 224, 224)
        np.testing.assert_allclose(serving, training, atol=1e-5, rtol=0)


def test_exif_orientation_is_applied() -> None:
    image = tissue(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    assert decode(encoded(image, "JPEG", exif=exif)).size == (20, 40)


def test_first_frame_of_a_multi_frame_file() -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encoded(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    assert decode(data).getpixel((5, 5)) == (255, 0, 0)


def test_transparent_pixels_become_white() -> None:
    data = encoded(Image.new("RGBA", (8, 8), (10, 20, 30, 0)), "PNG")
    assert decode(data).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_body"),
        (b"this is not an image at all", "invalid_image"),
        (encoded(tissue(64, 64), "PNG")[:300], "invalid_image"),
        (encoded(tissue(64, 64), "JPEG")[:200], "invalid_image"),
    ],
    ids=["empty", "text", "truncated-png", "truncated-jpeg"],
)
def test_bad_bytes_are_named(data: bytes, code: str) -> None:
    with pytest.raises(errors.ServingError) as error:
        decode(data)
    assert error.value.code == code
    assert error.value.status == 400
    assert "object at 0x" not in error.value.message  # a reason, not a Python object's repr


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = encoded(Image.new("L", (12_000, 12_000)), "PNG")  # 144 Mpx in a few hundred kB
    assert len(bomb) < 1_000_000
    with pytest.raises(errors.ServingError) as error:
        decode(bomb)
    assert (error.value.code, error.value.status) == ("image_too_large", 413)


def test_serving_modules_never_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys, inference.server, inference.lambda_handler, inference.predictor, inference.batch;"
        "loaded = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')];"
        "assert not loaded, loaded"
    )
    env = {**os.environ, "MODEL_ROOT": str(tmp_path), "MODEL_NAME": "absent"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_serving_requirements_have_no_torch() -> None:
    lines = (REPO / "requirements" / "inference.txt").read_text().lower().splitlines()
    assert not [line for line in lines if line.startswith(("torch", "lightning", "timm"))]


def sixteen_bit_png(width: int, height: int) -> bytes:
    """A grey 16-bit PNG of zeros, written chunk by chunk: tens of megapixels in tens of kilobytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\0" * ((1 + width * 2) * height), 9)
    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_a_small_file_of_too_many_pixels_is_refused_before_it_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 91 KB 16-bit PNG of 39 megapixels cost 1.5-5 s and 1.2 GB to decode."""
    data = sixteen_bit_png(6245, 6245)
    assert len(data) < 200_000
    decoded: list[Image.Image] = []
    load = ImageFile.ImageFile.load  # what a PNG's pixels are read by
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image) or load(image))
    with pytest.raises(errors.ServingError) as refused:
        decode(data)
    assert decoded == []  # its header was read, never its pixels
    assert (refused.value.code, refused.value.status) == ("image_too_large", 413)
    small = decode(sixteen_bit_png(64, 48))  # within the limits, it decodes: 8-bit RGB, black
    assert (small.mode, small.size, small.getpixel((0, 0))) == ("RGB", (64, 48), (0, 0, 0))
    assert decoded  # the patch sees a decode
    assert {image.size for image in decoded} == {(64, 48)}
