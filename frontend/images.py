"""The images a page sends: from uploads, a ZIP, or a folder, with their true labels when known.

Labels come from an MHIST ``annotations.csv`` (beside ``images/``) or a CSV of ``image,label``
(``labels.csv``, or the only CSV there is). Nothing here decodes more than an image's header.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from PIL import Image

from inference.annotations import CLASS_NAMES, AnnotationsError, read_annotations

SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
ZIP_MAX_IMAGES = 5000
ZIP_MAX_BYTES = 2 * 1024**3  # uncompressed: a ZIP bomb is refused by its listing, before it is read
THUMBNAIL = 64


@dataclass(frozen=True)
class Item:
    name: str
    data: bytes
    truth: str | None = None  # HP or SSA when a label is known

    @cached_property  # looked up on every rerun, for every image
    def key(self) -> str:
        """The image's identity for the answer cache: its bytes, whatever it is called."""
        return hashlib.sha256(self.data).hexdigest()


class ImagesError(ValueError):
    """A source of images the page cannot use; the message names what is wrong."""


def labels_from_csv(text: str, source: str) -> dict[str, str]:
    """``image -> HP|SSA`` from a CSV with an image column and a label column (MHIST's names, or
    ``image`` and ``label``)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    columns = list(rows[0]) if rows else []
    image = next((c for c in columns if c.strip().lower() in ("image", "image name", "file", "filename")), None)
    label = next((c for c in columns if c.strip().lower() in ("label", "majority vote label", "class")), None)
    if image is None or label is None:
        raise ImagesError(f"{source}: expected an image column and a label column; found {columns}")
    labels = {PurePosixPath(r[image].strip()).name: r[label].strip().upper() for r in rows}
    wrong = sorted({v for v in labels.values() if v not in CLASS_NAMES})
    if wrong:
        raise ImagesError(f"{source}: labels must be {' or '.join(CLASS_NAMES)}; found {wrong[:5]}")
    return labels


def _labelled(items: Iterable[Item], labels: dict[str, str]) -> list[Item]:
    return [Item(i.name, i.data, labels.get(PurePosixPath(i.name).name, i.truth)) for i in items]


def from_zip(data: bytes, source: str = "the ZIP") -> list[Item]:
    """The images in a ZIP (any folders deep), labelled by the CSV it holds, if any."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise ImagesError(f"{source} is not a ZIP file ({error})") from error
    members = [m for m in archive.infolist() if not m.is_dir() and "__MACOSX" not in m.filename]
    pictures = [m for m in members if m.filename.lower().endswith(SUFFIXES)]
    if len(pictures) > ZIP_MAX_IMAGES or sum(m.file_size for m in members) > ZIP_MAX_BYTES:
        raise ImagesError(f"{source} holds {len(pictures)} images: at most {ZIP_MAX_IMAGES} images, 2 GiB in all")
    if not pictures:
        raise ImagesError(f"{source} holds no PNG, JPEG or TIFF image")
    items = [Item(m.filename, archive.read(m)) for m in sorted(pictures, key=lambda m: m.filename)]
    tables = [m for m in members if m.filename.lower().endswith(".csv")]
    table = next((m for m in tables if PurePosixPath(m.filename).name in ("annotations.csv", "labels.csv")), None)
    table = table or (tables[0] if len(tables) == 1 else None)
    if table is None:
        return items
    return _labelled(items, labels_from_csv(archive.read(table).decode("utf-8-sig"), f"{source}: {table.filename}"))


def from_folder(root: Path) -> list[Item]:
    """An MHIST folder (``annotations.csv`` and ``images/``), or a folder of images with a ``labels.csv``,
    or a plain folder of images."""
    if not root.is_dir():
        raise ImagesError(f"{root} is not a folder")
    if (root / "annotations.csv").is_file():
        try:
            records = read_annotations(root)
        except AnnotationsError as error:
            raise ImagesError(str(error)) from error
        found = [(root / "images" / r.image, r.class_name) for r in records]
        return [Item(p.name, p.read_bytes(), label) for p, label in found if p.is_file()]
    items = [Item(p.name, p.read_bytes()) for p in sorted(root.iterdir()) if p.suffix.lower() in SUFFIXES]
    if (root / "labels.csv").is_file():
        items = _labelled(items, labels_from_csv((root / "labels.csv").read_text(), str(root / "labels.csv")))
    if not items:
        raise ImagesError(f"{root} holds no PNG, JPEG or TIFF image")
    return items


def shape(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header, or None for bytes Pillow cannot read."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def shape_note(data: bytes, input_size: int) -> str:
    """What happens to an image that is not square: the service resizes it to a square, stretching it."""
    size = shape(data)
    if size is None or size[0] == size[1]:
        return ""
    return f"{size[0]}x{size[1]}, not square: the model sees it stretched to {input_size}x{input_size}"


def drawable(data: bytes) -> Image.Image | None:
    """The decoded image, or None when it cannot be drawn here: unreadable, or so large that Pillow calls it
    a decompression bomb (the page says so in its own words; the API judges the image all the same)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None
    return image


def thumbnail(data: bytes) -> str | None:
    """A small PNG as a data URL for a table's image column; None when it cannot be drawn here."""
    image = drawable(data)
    if image is None:
        return None
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    out = io.BytesIO()
    image.convert("RGB").save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
