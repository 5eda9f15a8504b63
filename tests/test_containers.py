"""No Docker engine here: the Dockerfiles are linted with hadolint and the compose file is parsed
and checked against what the app expects (port, model mount, health check)."""

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
    assert 'CMD ["gunicorn", "-c", "inference/gunicorn_conf.py"]' in server_file
    assert (INFERENCE / "gunicorn_conf.py").is_file()
    assert "/ready" in server_file  # the container is healthy only with a model loaded


def test_compose_runs_the_service_with_the_models_mounted_read_only() -> None:
    compose = yaml.safe_load((INFERENCE / "docker-compose.yml").read_text())
    service = compose["services"]["inference"]
    assert service["build"]["dockerfile"] == "inference/Dockerfile.server"
    assert (INFERENCE / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    assert service["restart"] == "unless-stopped"
    (volume,) = service["volumes"]
    assert volume["target"] == service["environment"]["MODEL_ROOT"] == "/models"
    assert volume["read_only"] is True
    assert service["ports"][0].endswith(":8080")
    assert "/ready" in " ".join(service["healthcheck"]["test"])
    # the layout is gunicorn_conf.py's unless the host sets it: a pinned default here once overrode it
    assert service["environment"]["WEB_CONCURRENCY"] is None
    assert service["environment"]["GUNICORN_THREADS"] is None
