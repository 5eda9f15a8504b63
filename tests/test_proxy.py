"""nginx (Debian's, installed by .ci/run) in front of the real gunicorn service on 127.0.0.1, as the
service image runs them (``python -m inference.proxy``): hostile and slow clients meet nginx, which
gives gunicorn only whole requests, and answers what it refuses itself with the API's error JSON."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from bench.common import sample_png as png
from tests.servers import gunicorn, nginx_proxy

pytestmark = pytest.mark.slow
MODEL, MAX_BYTES, TIMEOUT_S = "mlp-64-32", 300_000, 3
LIMITS = {"MAX_IMAGE_BYTES": str(MAX_BYTES), "MAX_BATCH": "4"}
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def proxied(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    base = tmp_path_factory.mktemp("proxied")
    app, app_url = gunicorn(model_store, base / "gunicorn.log", MODEL_NAME=MODEL, **LIMITS)
    proxy, url = nginx_proxy(app_url, base / "nginx.log", PROXY_TIMEOUT_S=str(TIMEOUT_S), **LIMITS)
    with app, proxy:
        yield {"url": url, "port": int(url.rsplit(":", 1)[1]), "log": base / "gunicorn.log", "base": base}


def predict(url: str, seed: int = 0) -> requests.Response:
    return requests.post(f"{url}/predict", data=png(seed), headers={"Content-Type": "image/png"}, timeout=10)


def raw(port: int, data: bytes, *, wait_s: float = 10) -> str:
    """Send bytes on a fresh connection; everything that comes back until it closes or ``wait_s``."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as connection:
        connection.sendall(data)
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    return answer.decode(errors="replace")


def test_requests_pass_with_an_id_and_the_client_address(proxied: dict) -> None:
    answer = predict(proxied["url"])
    assert answer.status_code == 200
    request_id = answer.headers["X-Request-Id"]
    assert len(request_id) == 32  # nginx's $request_id, passed on to the app and back
    time.sleep(0.5)
    lines = [json.loads(line) for line in proxied["log"].read_text().splitlines() if line.startswith("{")]
    (line,) = [entry for entry in lines if entry.get("request_id") == request_id]
    assert (line["client"], line["status"], line["model"]) == ("127.0.0.1", 200, MODEL)


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 400000000\r\n\r\n",
            413,
            "payload_too_large",
        ),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431, "headers_too_large"),
        (b"WHAT IS THIS\r\n\r\n", 400, "bad_request"),
    ],
)
def test_what_nginx_refuses_itself_is_the_apis_error_json(
    proxied: dict, request_bytes: bytes, status: int, code: str
) -> None:
    answer = raw(proxied["port"], request_bytes)
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status}"), head
    assert "application/json" in head
    assert json.loads(body)["error"]["code"] == code


def test_a_stalled_upload_is_cut_off_after_the_timeout(proxied: dict) -> None:
    """nginx answers no timed-out request (it closes the connection); gunicorn never sees it."""
    started = time.monotonic()
    answer = raw(
        proxied["port"],
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n" + b"0" * 1000,
        wait_s=TIMEOUT_S + 10,
    )
    assert TIMEOUT_S - 1 < time.monotonic() - started < TIMEOUT_S + 5
    assert answer == ""


def test_idle_and_stalled_clients_do_not_hold_up_the_others(proxied: dict) -> None:
    """Without the proxy, in the default 1x2 layout, 20 connections that sent nothing stalled every request
    for 50 s, and two half-sent uploads hung the service for over 95 s."""
    sockets = []
    try:
        for _ in range(50):
            sockets.append(socket.create_connection(("127.0.0.1", proxied["port"]), timeout=5))
        for _ in range(10):
            stalled = socket.create_connection(("127.0.0.1", proxied["port"]), timeout=5)
            stalled.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                b"Content-Length: 200000\r\n\r\n" + b"0" * 1000
            )
            sockets.append(stalled)
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda seed: predict(proxied["url"], seed), range(20)))
        elapsed = time.monotonic() - started
    finally:
        for held in sockets:
            held.close()
    assert [a.status_code for a in answers] == [200] * 20
    assert elapsed < TIMEOUT_S  # they were served while every held connection was still open


def test_fuzzing_through_the_proxy_finds_no_server_error_and_no_schema_violation(proxied: dict, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "run",
            f"{proxied['url']}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--max-examples",
            "25",
            "--request-timeout",
            "30",
            "--generation-deterministic",
        ],
        capture_output=True,
        text=True,
        timeout=500,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-4000:]


def test_a_bad_setting_stops_the_proxy_in_one_line() -> None:
    env = {**os.environ, "PROXY_TIMEOUT_S": "ten", "MAX_BATCH": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "inference.proxy"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "MAX_BATCH='0': Input should be greater than 0" in result.stderr
    assert "PROXY_TIMEOUT_S='ten': Input should be a valid integer" in result.stderr
    assert "Traceback" not in result.stderr
