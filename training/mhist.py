"""Checking an MHIST folder for training: its annotations (parsed by ``inference.annotations``), its
images, and the fingerprint a run records. Every problem is reported at once."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image

from inference import annotations
from inference.annotations import MhistRecord, listing
from inference.preprocessing import to_rgb
from training.errors import TrainingSetupError


class MhistFolderError(TrainingSetupError):
    """An MHIST folder that cannot be used as it is; the message lists every problem."""


def read_annotations(root: str | Path) -> list[MhistRecord]:
    """The records of ``data.root``, its problems as a setup error that fit.py reports in one go."""
    try:
        return annotations.read_annotations(root)
    except annotations.AnnotationsError as error:
        raise MhistFolderError(f"data.root: {error}") from None


def check_images(root: str | Path, records: list[MhistRecord]) -> None:
    """Verify that every listed image exists and decodes; list all that do not."""
    images = Path(root) / "images"
    problems = []
    for record in records:
        path = images / record.image
        if not path.is_file():
            problems.append(f"line {record.line}: {path} is missing")
            continue
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception as error:  # noqa: BLE001 - any decoder failure is a bad image
            problems.append(f"line {record.line}: {path} cannot be decoded ({error})")
    if problems:
        raise MhistFolderError(listing(Path(root), problems))


def fingerprint(root: str | Path, records: list[MhistRecord]) -> dict[str, str]:
    """What identifies a data set version in a run: image count and a hash of annotations.csv."""
    digest = hashlib.sha256((Path(root) / "annotations.csv").read_bytes()).hexdigest()
    return {"data.images": str(len(records)), "data.annotations_sha256": digest}


def load_rgb(path: str | Path) -> Image.Image:
    """Decode exactly as serving does (one implementation): EXIF orientation, first frame, RGB."""
    with Image.open(path) as image:
        return to_rgb(image)
