"""Reading and checking an MHIST folder (``annotations.csv`` + ``images/``).

Every problem is reported at once, naming the file and the CSV line, so a user fixes a broken
folder in one pass instead of one crash at a time.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from inference.preprocessing import to_rgb
from training.errors import TrainingSetupError

IMAGE_COLUMN = "Image Name"
LABEL_COLUMN = "Majority Vote Label"
ANNOTATORS_COLUMN = "Number of Annotators who Selected SSA (Out of 7)"
PARTITION_COLUMN = "Partition"
REQUIRED_COLUMNS = (IMAGE_COLUMN, LABEL_COLUMN, ANNOTATORS_COLUMN, PARTITION_COLUMN)
LABELS = {"HP": 0, "SSA": 1}
CLASS_NAMES = ("HP", "SSA")
PARTITIONS = ("train", "test")
MAX_LISTED_PROBLEMS = 25


class MhistFolderError(TrainingSetupError):
    """An MHIST folder that cannot be used as it is; the message lists every problem."""


@dataclass(frozen=True)
class MhistRecord:
    image: str
    label: int
    partition: str
    annotators_ssa: int
    line: int


def _raise_listing(path: Path, problems: list[str]) -> None:
    shown = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(shown)
    lines = "\n  ".join(shown + ([f"... and {more} more"] if more else []))
    raise MhistFolderError(f"{path}: {len(problems)} problem(s):\n  {lines}")


def read_annotations(root: str | Path) -> list[MhistRecord]:
    """Parse ``annotations.csv``; raise :class:`MhistFolderError` naming every bad row."""
    root = Path(root)
    csv_path = root / "annotations.csv"
    if not root.is_dir():
        raise MhistFolderError(f"MHIST folder {root} does not exist (point data.root at the folder)")
    if not csv_path.is_file():
        raise MhistFolderError(f"{csv_path} not found: an MHIST folder holds annotations.csv and images/")
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise MhistFolderError(f"{csv_path}: missing column(s) {missing}; found {columns}")
        reader.fieldnames = columns
        records, problems = [], []
        for line, row in enumerate(reader, start=2):
            name = (row[IMAGE_COLUMN] or "").strip()
            label = (row[LABEL_COLUMN] or "").strip()
            partition = (row[PARTITION_COLUMN] or "").strip().lower()
            votes = (row[ANNOTATORS_COLUMN] or "").strip()
            where = f"line {line} ({name or 'no image name'})"
            row_problems = []
            if not name:
                row_problems.append(f"{where}: empty {IMAGE_COLUMN!r}")
            if label not in LABELS:
                row_problems.append(f"{where}: label {label!r} is not one of {sorted(LABELS)}")
            if partition not in PARTITIONS:
                row_problems.append(f"{where}: partition {partition!r} is not one of {PARTITIONS}")
            if not votes.isdigit() or int(votes) > 7:
                row_problems.append(f"{where}: annotator count {votes!r} is not 0..7")
            problems += row_problems
            if not row_problems:
                records.append(MhistRecord(name, LABELS[label], partition, int(votes), line))
    if problems:
        _raise_listing(csv_path, problems)
    if not records:
        raise MhistFolderError(f"{csv_path} lists no images")
    return records


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
        _raise_listing(Path(root), problems)


def fingerprint(root: str | Path, records: list[MhistRecord]) -> dict[str, str]:
    """What identifies a data set version in a run: image count and a hash of annotations.csv."""
    digest = hashlib.sha256((Path(root) / "annotations.csv").read_bytes()).hexdigest()
    return {"data.images": str(len(records)), "data.annotations_sha256": digest}


def load_rgb(path: str | Path) -> Image.Image:
    """Decode exactly as serving does (one implementation): EXIF orientation, first frame, RGB."""
    with Image.open(path) as image:
        return to_rgb(image)
