"""The Dockerfiles linted with hadolint, and the compose file checked against what the app and the
instance expect (host network, model mount, health checks); tests/test_images.py builds and runs them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO

INFERENCE = REPO / "inference"
BIN = Path(sys.executable).parent


def test_dockerfiles_pass_hadolint() -> None:
    for name in ("Dockerfile.lambda", "Dockerfile.server"):
        result = subprocess.run([str(BIN / "hadolint"), str(INFERENCE / name)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"


def test_dockerfiles_copy_what_exists_and_start_what_exists() -> None:
    lambda_file = (INFERENCE / "Dockerfile.lambda").read_text()
    server_file = (INFERENCE / "Dockerfile.server").read_text()
    for text in (lambda_file, server_file):
        for source in re.findall(r"^COPY (\S+)", text, flags=re.MULTILINE):
            assert (REPO / source).exists(), source
        instructions = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        assert "torch" not in instructions
    assert 'CMD ["inference.lambda_handler.handler"]' in lambda_file
    assert 'ENTRYPOINT ["/opt/venv/bin/python", "-m", "awslambdaric"]' in lambda_file
    assert 'CMD ["gunicorn", "-c", "inference/gunicorn_conf.py"]' in server_file
    for text in (lambda_file, server_file):  # the public base on AWS, another only when named
        assert "ARG BASE_IMAGE=python:3.11-slim-bookworm\nFROM ${BASE_IMAGE}" in text
    assert (INFERENCE / "gunicorn_conf.py").is_file()
    assert "/ready" in server_file  # the container is healthy only with a model loaded


def test_compose_runs_nginx_in_front_of_gunicorn_with_the_models_mounted_read_only() -> None:
    compose = yaml.safe_load((INFERENCE / "docker-compose.yml").read_text())
    app, proxy = compose["services"]["app"], compose["services"]["proxy"]
    for service in (app, proxy):
        assert service["build"]["dockerfile"] == "inference/Dockerfile.server"
        assert (INFERENCE / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["restart"] == "unless-stopped"
        assert service["network_mode"] == "host"  # no bridge: the app listens on 127.0.0.1 only
        assert "ports" not in service
    assert proxy["command"] == ["python", "-m", "inference.proxy"]
    assert proxy["environment"]["UPSTREAM"] == app["environment"]["BIND"] == "${APP_BIND:-127.0.0.1:8081}"
    (volume,) = app["volumes"]
    assert volume["target"] == app["environment"]["MODEL_ROOT"] == "/models"
    assert volume["read_only"] is True
    assert "/ready" in " ".join(app["healthcheck"]["test"])
    # the layout is gunicorn_conf.py's unless the host sets it: a pinned default here once overrode it
    assert app["environment"]["WEB_CONCURRENCY"] is None
    assert app["environment"]["GUNICORN_THREADS"] is None
    # both refuse by the same limits, passed on only when set
    assert {k for k, v in proxy["environment"].items() if v is None} == {
        k for k in app["environment"] if k.startswith("MAX_")
    }
