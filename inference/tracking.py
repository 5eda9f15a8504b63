"""The MLflow store that training logs to and publishing, re-exporting and the report read from.

MLflow creates an empty sqlite store wherever a URI points. A mistyped ``--tracking-uri`` would
then be answered with "no such run" from a database made for the occasion, and leave it behind.
These readers refuse a local store that does not exist instead. A tracking server that does not
answer is retried by MLflow for minutes and then fails with a traceback; a fit asks it once first.
Torch-free: ``inference.publish`` uses it.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_STORE = "sqlite:///outputs/mlflow.db"  # where training/fit.py writes by default


def sqlite_path(tracking_uri: str) -> Path | None:
    """The file behind a local sqlite store (``sqlite:///relative.db``, ``sqlite:////absolute.db``), else None."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(database) if database and database != ":memory:" else None


def unreadable_store(tracking_uri: str) -> str | None:
    """Why runs cannot be read from ``tracking_uri`` (without creating a new store, or waiting minutes
    on a server that does not answer), or None when they can."""
    path = sqlite_path(tracking_uri)
    if path is None or path.is_file():
        return unreachable_server(tracking_uri)
    return (
        f"--tracking-uri {tracking_uri}: there is no MLflow store at {path}; train first (make demo), "
        "or name the store training/fit.py wrote to"
    )


def unreachable_server(tracking_uri: str, timeout_s: float = 10.0) -> str | None:
    """Why an ``http(s)`` tracking server cannot be used, or None when it answers (any HTTP status:
    an auth-guarded server still answers) or the store is not a server."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    try:
        urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"the MLflow tracking server at {tracking_uri} does not answer ({reason})"
    return None
