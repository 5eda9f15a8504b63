"""Real servers on 127.0.0.1 for integration tests: PostgreSQL, an S3-compatible endpoint, MLflow."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def _as_postgres(command: list[str]) -> list[str]:
    """initdb refuses to run as root: CI is root, so drop to the postgres user there."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throwaway cluster on a free loopback port; yields a postgresql:// URI to database mlflow."""
    if not shutil.which("initdb") or not shutil.which("pg_ctl"):
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    base = Path(tempfile.mkdtemp(prefix="mhist-pg-"))  # pytest's tmp root is closed to other users
    data, port = base / "pgdata", free_port()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    subprocess.run(_as_postgres(["initdb", "-D", str(data), "-U", "mlflow", "--auth=trust"]), check=True,
                   capture_output=True)  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base}"
    subprocess.run(_as_postgres(["pg_ctl", "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"]),
                   check=True, capture_output=True)  # fmt: skip
    try:
        subprocess.run(["createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow"], check=True)
        yield f"postgresql://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run(_as_postgres(["pg_ctl", "-D", str(data), "-m", "fast", "stop"]), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def process(command: list[str], url: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as handle:
        proc = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_http(url, proc)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            with contextlib.suppress(ProcessLookupError):  # whatever it left behind (its own session)
                os.killpg(proc.pid, signal.SIGKILL)


S3_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def s3_server(log: Path) -> Iterator[str]:
    """moto's S3 in server mode on a free loopback port (AWS itself is the edge that cannot exist here)."""
    import sys

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with process(command, url, {**os.environ, **S3_KEYS}, log):
        yield url


def gunicorn_launch(store: Path, port: int, **env: str) -> tuple[list[str], dict[str, str]]:
    """(command, environment) of the real serving stack (``inference/gunicorn_conf.py``) on a loopback port."""
    import sys

    repo = Path(__file__).resolve().parent.parent
    environment = {**os.environ, "PYTHONPATH": str(repo), "BIND": f"127.0.0.1:{port}", "MODEL_ROOT": str(store), **env}
    return [
        str(Path(sys.executable).parent / "gunicorn"),
        "-c",
        str(repo / "inference" / "gunicorn_conf.py"),
    ], environment


def gunicorn(store: Path, log: Path, **env: str) -> tuple[contextmanager, str]:
    """The serving stack on a free loopback port, two workers unless told: (context, base URL)."""
    port = free_port()
    command, environment = gunicorn_launch(store, port, **{"WEB_CONCURRENCY": "2", **env})
    return process(command, f"http://127.0.0.1:{port}/health", environment, log), f"http://127.0.0.1:{port}"
