"""Reading an MHIST ``annotations.csv``: one parser for training, batch scoring and the front end.

Standard library only, so the serving image and the Streamlit app can use it. Every problem is
reported at once, naming the file and the CSV line, so a broken folder is fixed in one pass.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

IMAGE_COLUMN = "Image Name"
LABEL_COLUMN = "Majority Vote Label"
ANNOTATORS_COLUMN = "Number of Annotators who Selected SSA (Out of 7)"
PARTITION_COLUMN = "Partition"
REQUIRED_COLUMNS = (IMAGE_COLUMN, LABEL_COLUMN, ANNOTATORS_COLUMN, PARTITION_COLUMN)
LABELS = {"HP": 0, "SSA": 1}
CLASS_NAMES = ("HP", "SSA")
PARTITIONS = ("train", "test")
ANNOTATORS = 7  # pathologists per image
MAX_LISTED_PROBLEMS = 25


class AnnotationsError(ValueError):
    """An MHIST folder that cannot be used as it is; the message lists every problem."""


@dataclass(frozen=True)
class MhistRecord:
    image: str
    label: int
    partition: str
    annotators_ssa: int
    line: int

    @property
    def class_name(self) -> str:
        return CLASS_NAMES[self.label]


def listing(path: Path, problems: list[str]) -> str:
    """``path: N problem(s):`` and the first problems, one per line."""
    shown = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(shown)
    lines = "\n  ".join(shown + ([f"... and {more} more"] if more else []))
    return f"{path}: {len(problems)} problem(s):\n  {lines}"


def read_annotations(root: str | Path) -> list[MhistRecord]:
    """Parse ``root/annotations.csv``; raise :class:`AnnotationsError` naming every bad row."""
    root = Path(root)
    csv_path = root / "annotations.csv"
    if not root.is_dir():
        raise AnnotationsError(f"MHIST folder {root} does not exist")
    if not csv_path.is_file():
        raise AnnotationsError(f"{csv_path} not found: an MHIST folder holds annotations.csv and images/")
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            return _records(csv_path, csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as error:
        raise AnnotationsError(f"{csv_path} is not a readable CSV ({error})") from error


def _records(csv_path: Path, reader: csv.DictReader) -> list[MhistRecord]:
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise AnnotationsError(f"{csv_path}: missing column(s) {missing}; found {columns}")
    reader.fieldnames = columns
    records, problems = [], []
    for line, row in enumerate(reader, start=2):
        cell = {column: (row[column] or "").strip() for column in REQUIRED_COLUMNS}  # a short row has None
        name, label, votes = cell[IMAGE_COLUMN], cell[LABEL_COLUMN], cell[ANNOTATORS_COLUMN]
        partition = cell[PARTITION_COLUMN].lower()
        where = f"line {line} ({name or 'no image name'})"
        row_problems = []
        if not name:
            row_problems.append(f"{where}: empty {IMAGE_COLUMN!r}")
        if label not in LABELS:
            row_problems.append(f"{where}: label {label!r} is not one of {sorted(LABELS)}")
        if partition not in PARTITIONS:
            row_problems.append(f"{where}: partition {partition!r} is not one of {PARTITIONS}")
        if not votes.isdigit() or int(votes) > ANNOTATORS:
            row_problems.append(f"{where}: annotator count {votes!r} is not 0..{ANNOTATORS}")
        problems += row_problems
        if not row_problems:
            records.append(MhistRecord(name, LABELS[label], partition, int(votes), line))
    if problems:
        raise AnnotationsError(listing(csv_path, problems))
    if not records:
        raise AnnotationsError(f"{csv_path} lists no images")
    return records
