"""The serving images, built and run for real on this machine's Docker engine (.ci/run installs and
starts Debian's), on Debian's own packages where no image registry answers (.ci/base-image.sh):
the service as EC2 runs it (docker compose: nginx in front of gunicorn, the models bind-mounted
read-only), and the Lambda image's handler under the AWS runtime interface client against a
stand-in of the Lambda Runtime API (the only stand-in: AWS itself)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench.common import sample_png as png
from inference import publish
from tests.conftest import REPO
from tests.lambda_runtime import RuntimeApi
from tests.servers import free_port

pytestmark = pytest.mark.slow
MODEL = "mlp-64-32"
# Debian's client first: it builds with BuildKit by itself (a newer client wants the buildx plugin)
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker") or "docker"
CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
LAMBDA_LIMIT_GB = 10  # Lambda's limit for an image
VENV_OWN = {"pip", "setuptools"}  # what `python3 -m venv` puts in, from the base image's Python


def docker(*args: str, timeout: float = 900, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """The two images, built as `cdk deploy` builds them, on the stand-in base; their tags."""
    if docker("info", timeout=30).returncode != 0:
        raise RuntimeError(f"no Docker engine answers {DOCKER}: .ci/run installs Debian's docker.io and starts it")
    base = os.environ.get("MHIST_BASE_IMAGE", "mhist-base:bookworm")
    subprocess.run(["bash", str(REPO / ".ci" / "base-image.sh"), base], check=True, timeout=900)
    secret = ["--secret", f"id=pip-ca,src={CA_BUNDLE}"] if CA_BUNDLE.is_file() else []
    tags = {"server": "mhist-inference:test", "lambda": "mhist-lambda:test"}
    for name, tag in tags.items():
        built = docker(
            "build",
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={base}",
            *secret,
            "-f",
            f"inference/Dockerfile.{name}",
            "-t",
            tag,
            ".",
            cwd=REPO,
            env={**os.environ, "DOCKER_BUILDKIT": "1"},
        )
        assert built.returncode == 0, built.stderr[-3000:]
    return tags


@pytest.fixture(scope="session")
def readable_store(model_store: Path) -> Iterator[Path]:
    """The model store where the images' user (uid 1000) can read it (pytest's folders are private)."""
    folder = Path(tempfile.mkdtemp(prefix="mhist-images-"))
    store = folder / "models"
    store.mkdir()
    publish.install(model_store / MODEL, store)  # as `make serve` and the sync function publish
    for path in (folder, *store.rglob("*"), store):
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield store
    shutil.rmtree(folder, ignore_errors=True)


def compose_command() -> list[str]:
    """Docker Compose v2 (the plugin EC2 installs) where there is one, else Debian's docker-compose."""
    if docker("compose", "version", timeout=30).returncode == 0:
        return [DOCKER, "compose"]
    return [shutil.which("docker-compose") or "docker-compose"]


@pytest.fixture(scope="session")
def compose_service(images: dict[str, str], readable_store: Path) -> Iterator[str]:
    """inference/docker-compose.yml as the EC2 user data starts it; the proxy's base URL."""
    port, app_port = free_port(), free_port()
    env = {
        **os.environ,
        "SERVICE_IMAGE": images["server"],
        "MODEL_HOST_PATH": str(readable_store),
        "MODEL_NAME": MODEL,
        "PROXY_BIND": f"127.0.0.1:{port}",
        "APP_BIND": f"127.0.0.1:{app_port}",
    }
    command = [*compose_command(), "-f", str(REPO / "inference" / "docker-compose.yml"), "-p", f"mhist{port}"]
    started = subprocess.run([*command, "up", "-d", "--no-build"], env=env, capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stderr[-3000:]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # not up yet, or up and still loading: a slow answer is no answer
                pass
            time.sleep(0.5)
        else:
            logs = subprocess.run([*command, "logs"], env=env, capture_output=True, text=True, timeout=60)
            raise AssertionError(f"the composed service did not get ready:\n{logs.stdout[-3000:]}")
        yield url
    finally:
        subprocess.run([*command, "down", "--timeout", "10"], env=env, capture_output=True, timeout=120)


def test_the_images_are_small_and_hold_no_torch(images: dict[str, str]) -> None:
    for tag in images.values():
        size = int(docker("image", "inspect", tag, "--format", "{{.Size}}").stdout)
        assert size < 1024**3  # far under Lambda's 10 GB; the README records each
        probe = docker(
            "run",
            "--rm",
            "--network",
            "host",
            "--entrypoint",
            "python",
            tag,
            "-c",
            "from importlib.util import find_spec as f; print(f('torch') is None, f('openvino') is not None)",
        )
        no_torch, openvino = probe.stdout.split()
        assert no_torch == "True", f"{tag} holds torch"
        assert openvino == str(tag == images["server"])  # the Lambda's size: onnxruntime alone


def test_every_package_in_the_images_is_the_version_ci_tested(images: dict[str, str]) -> None:
    """The images install requirements/*.txt with constraints.txt, so their transitive packages are the
    dev environment's too, not whatever the index offers on the day of a build."""
    tested = {}
    for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            tested[name.lower().replace("_", "-")] = version.strip()
    for tag in images.values():
        listed = docker("run", "--rm", "--network", "host", "--entrypoint", "pip", tag, "list", "--format", "json")
        installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listed.stdout)}
        installed = {k: v for k, v in installed.items() if k not in VENV_OWN}
        unpinned = {name for name in installed if name not in tested}
        differing = {name: (v, tested[name]) for name, v in installed.items() if name in tested and tested[name] != v}
        assert (unpinned, differing) == (set(), {}), tag


def test_the_composed_service_predicts_through_its_proxy(compose_service: str) -> None:
    answer = requests.post(f"{compose_service}/predict", data=png(1), headers={"Content-Type": "image/png"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == MODEL
    assert len(answer.headers["X-Request-Id"]) == 32  # nginx's id, through gunicorn
    refused = requests.post(
        f"{compose_service}/predict", data=b"0" * (15 * 1024 * 1024), headers={"Content-Type": "image/png"}, timeout=30
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (413, "payload_too_large")  # nginx's
    card = requests.get(f"{compose_service}/metadata", timeout=30).json()
    assert card["runtime"] in {"onnxruntime", "openvino"}  # MODEL_RUNTIME=auto: the faster, measured at load


def test_the_lambda_image_answers_under_the_runtime_interface_client(
    images: dict[str, str], readable_store: Path, compose_service: str
) -> None:
    """The same JSON as the EC2 service (Flask) for the same image."""
    port = free_port()
    runtime = RuntimeApi(port)
    container = f"mhist-lambda-{port}"
    started = docker(
        "run",
        "-d",
        "--rm",
        "--name",
        container,
        "--network",
        "host",
        "-v",
        f"{readable_store}:/mnt/models:ro",
        "-e",
        f"AWS_LAMBDA_RUNTIME_API=127.0.0.1:{port}",
        "-e",
        f"MODEL_NAME={MODEL}",
        "-e",
        "AWS_LAMBDA_FUNCTION_NAME=mhist-predict",
        "-e",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=3008",
        "-e",
        "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
        "-e",
        "AWS_REGION=us-east-1",
        images["lambda"],
    )
    assert started.returncode == 0, started.stderr
    try:
        image = png(3)
        event = {
            "resource": "/predict",
            "path": "/predict",
            "httpMethod": "POST",
            "headers": {"Content-Type": "image/png"},
            "requestContext": {"stage": "prod"},
            "body": base64.b64encode(image).decode(),
            "isBase64Encoded": True,
        }
        kind, response = runtime.invoke(event)
        assert kind == "response", response
        assert response["statusCode"] == 200, response
        from_lambda = json.loads(response["body"])
        from_flask = requests.post(
            f"{compose_service}/predict", data=image, headers={"Content-Type": "image/png"}, timeout=30
        ).json()
        same = ("model", "model_version", "label", "threshold")
        assert {k: from_lambda[k] for k in same} == {k: from_flask[k] for k in same}
        flask_card = requests.get(f"{compose_service}/metadata", timeout=30).json()
        metadata = {"resource": "/metadata", "path": "/metadata", "httpMethod": "GET", "body": None}
        kind, response = runtime.invoke({**event, **metadata, "isBase64Encoded": False})
        card = json.loads(response["body"])
        assert card["runtime"] == "onnxruntime"  # no OpenVINO in the Lambda image
        # one runtime: the same number; OpenVINO behind the other door: each within its allowance of the fp32
        # answers, so within twice that of each other
        allowed = 0.0 if flask_card["runtime"] == "onnxruntime" else 2 * flask_card["fidelity"]["allowed"]
        assert from_lambda["probability"] == pytest.approx(from_flask["probability"], abs=allowed)
        kind, refused = runtime.invoke({**event, "body": base64.b64encode(b"not an image").decode()})
        assert (refused["statusCode"], json.loads(refused["body"])["error"]["code"]) == (400, "invalid_image")
        assert runtime.init_errors == []
    finally:
        logs = docker("logs", container, timeout=60)
        docker("rm", "-f", container, timeout=60)
        runtime.close()
    assert "Traceback" not in logs.stdout + logs.stderr
