"""The MLflow store that publishing, re-exporting and the report read runs from.

MLflow creates an empty sqlite store wherever a URI points. A mistyped ``--tracking-uri`` would
then be answered with "no such run" from a database made for the occasion, and leave it behind.
These readers refuse a local store that does not exist instead. Torch-free: ``inference.publish``
uses it.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_STORE = "sqlite:///outputs/mlflow.db"  # where training/fit.py writes by default


def sqlite_path(tracking_uri: str) -> Path | None:
    """The file behind a local sqlite store (``sqlite:///relative.db``, ``sqlite:////absolute.db``), else None."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(database) if database and database != ":memory:" else None


def missing_store(tracking_uri: str) -> str | None:
    """Why runs cannot be read from ``tracking_uri`` without creating a new store, or None when they can."""
    path = sqlite_path(tracking_uri)
    if path is None or path.is_file():
        return None
    return (
        f"--tracking-uri {tracking_uri}: there is no MLflow store at {path}; train first (make demo), "
        "or name the store training/fit.py wrote to"
    )
