"""inference/tracking.py: which MLflow stores can be read, and which server answers, on 127.0.0.1."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from inference.tracking import sqlite_path, unreachable_server, unreadable_store
from tests.servers import free_port


@pytest.fixture
def answering_url() -> Iterator[str]:
    """A plain HTTP server that answers 404 to everything: a server behind auth or a proxy answers
    something too, and that is enough to know it is there."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_sqlite_paths_are_read_from_the_uri() -> None:
    assert sqlite_path("sqlite:///outputs/mlflow.db") == Path("outputs/mlflow.db")
    assert sqlite_path("sqlite:////abs/mlflow.db?timeout=20") == Path("/abs/mlflow.db")
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql://u@h/db") is None
    assert sqlite_path("http://127.0.0.1:5000") is None


def test_a_store_is_readable_when_its_file_exists_or_its_server_answers(tmp_path: Path, answering_url: str) -> None:
    (tmp_path / "mlflow.db").write_bytes(b"")
    assert unreadable_store(f"sqlite:///{tmp_path}/mlflow.db") is None
    assert unreadable_store(answering_url) is None
    assert unreachable_server(answering_url) is None
    assert "there is no MLflow store at" in unreadable_store(f"sqlite:///{tmp_path}/typo.db")
    assert not (tmp_path / "typo.db").exists()


def test_a_server_that_does_not_answer_is_named_at_once() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert (
        unreachable_server(url)
        == f"the MLflow tracking server at {url} does not answer ([Errno 111] Connection refused)"
    )
    assert unreadable_store(url) == unreachable_server(url)
    assert unreachable_server("sqlite:///anything.db") is None


@pytest.mark.parametrize("entry", ["training.fit", "inference.publish"])
def test_entry_points_load_mlflow_without_its_telemetry(entry: str, tmp_path: Path) -> None:
    """MLflow 3 starts a telemetry client at ``import mlflow`` (it fetches a config from the internet and
    writes an installation id under ~) unless told not to; under pytest or CI it stays off by itself, so
    this runs in an environment without them, as a user's shell is, with name lookups refused."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = (
        "import socket\n"
        "def refuse(*args, **kwargs): raise OSError('no network in this test')\n"
        "socket.getaddrinfo = refuse\n"
        f"import {entry}\n"
        "from mlflow.telemetry import get_telemetry_client\n"
        "print(get_telemetry_client())\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None"]
    assert not [p for p in tmp_path.rglob("*") if "mlflow" in p.name.lower()]
