"""The real gunicorn service on 127.0.0.1, serving a model exported from a tiny trained model."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from PIL import Image

from bench.common import sample_png as png
from tests.servers import free_port, gunicorn, gunicorn_launch
from training.onnx_export import write_metadata

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
MODEL = "mlp-64-32"
MAX_BYTES = 300_000


def jpeg(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png(seed))).save(buffer, "JPEG")
    return buffer.getvalue()


def start(store: Path, log: Path, **env: str):  # noqa: ANN201
    settings = {"MODEL_NAME": MODEL, "MODEL_VARIANT": "fp32", "MAX_IMAGE_BYTES": str(MAX_BYTES), "MAX_BATCH": "4",
                "MODEL_RELOAD_CHECK_SECONDS": "0.2"}  # fmt: skip
    return gunicorn(store, log, **{**settings, **env})


@pytest.fixture(scope="module")
def service(model_store: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    base = tmp_path_factory.mktemp("service")
    store = Path(shutil.copytree(model_store, base / "models"))
    server, url = start(store, base / "gunicorn.log")
    with server:
        yield {"url": url, "store": store, "log": base / "gunicorn.log"}


def test_health_ready_metadata_openapi(service) -> None:  # noqa: ANN001
    url = service["url"]
    assert requests.get(f"{url}/health", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{url}/ready", timeout=10).json()
    assert ready["status"] == "ready"
    assert ready["model"] == MODEL
    card = requests.get(f"{url}/metadata", timeout=10).json()
    assert card["model_name"] == MODEL
    assert 0 < card["threshold"] < 1
    assert card["positive_class"] == "SSA"
    assert card["file"] == "model.onnx"
    document = requests.get(f"{url}/openapi.json", timeout=10).json()
    assert {"/predict", "/predict/batch", "/health", "/ready", "/metadata"} <= set(document["paths"])


def test_predict_raw_multipart_and_json_agree(service) -> None:  # noqa: ANN001
    url, image = service["url"], png(1)
    raw = requests.post(f"{url}/predict", data=image, headers={"Content-Type": "image/png"}, timeout=30)
    multipart = requests.post(f"{url}/predict", files={"image": ("x.png", image, "image/png")}, timeout=30)
    as_json = requests.post(f"{url}/predict", json={"image": base64.b64encode(image).decode()}, timeout=30)
    answers = [r.json() for r in (raw, multipart, as_json)]
    assert all(r.status_code == 200 for r in (raw, multipart, as_json))
    assert {a["probability"] for a in answers} == {answers[0]["probability"]}
    answer = answers[0]
    assert set(answer) >= {"model", "probability", "label", "threshold", "latency_ms", "model_version"}
    assert answer["label"] == ("SSA" if answer["probability"] >= answer["threshold"] else "HP")


def test_batch_gives_one_answer_per_image_in_order(service) -> None:  # noqa: ANN001
    url = service["url"]
    images = [png(i) for i in range(3)]
    singles = [requests.post(f"{url}/predict", data=i, headers={"Content-Type": "image/png"}, timeout=30).json()
               for i in images]  # fmt: skip
    batch = requests.post(f"{url}/predict/batch", json={"images": [base64.b64encode(i).decode() for i in images]},
                          timeout=30)  # fmt: skip
    assert batch.status_code == 200
    predictions = batch.json()["predictions"]
    assert [p["probability"] for p in predictions] == pytest.approx([s["probability"] for s in singles], abs=1e-5)
    files = [("image", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
    assert len(requests.post(f"{url}/predict/batch", files=files, timeout=30).json()["predictions"]) == 3


BAD = {
    "empty body": (b"", "image/png", "/predict", 400, "empty_body"),
    "not an image": (b"hello, world", "image/png", "/predict", 400, "invalid_image"),
    "truncated png": (png(2)[:500], "image/png", "/predict", 400, "invalid_image"),
    "truncated jpeg": (jpeg(3)[:300], "image/jpeg", "/predict", 400, "invalid_image"),
    "invalid base64": (b'{"image": "***not base64***"}', "application/json", "/predict", 400, "invalid_base64"),
    "json without image": (b'{"picture": "abc"}', "application/json", "/predict", 400, "missing_image"),
    "broken json": (b'{"image": ', "application/json", "/predict", 400, "invalid_json"),
    "unsupported media type": (b"just text", "text/plain", "/predict", 415, "unsupported_media_type"),
    "over the byte limit": (b"\x89PNG" + b"0" * (MAX_BYTES + 10), "image/png", "/predict", 413, "payload_too_large"),
    "over the request limit": (b"0" * (MAX_BYTES * 5), "image/png", "/predict", 413, "payload_too_large"),
    "too many images": (json.dumps({"images": [base64.b64encode(png(0, 16)).decode()] * 5}).encode(),
                        "application/json", "/predict/batch", 413, "too_many_images"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_a_4xx_with_a_code(service, case: str) -> None:  # noqa: ANN001
    body, content_type, path, status, code = BAD[case]
    response = requests.post(f"{service['url']}{path}", data=body, headers={"Content-Type": content_type}, timeout=30)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "Traceback" not in response.text


def test_decompression_bomb_is_refused(service) -> None:  # noqa: ANN001
    buffer = io.BytesIO()
    Image.new("L", (9_000, 9_000)).save(buffer, "PNG")  # 81 Mpx
    response = requests.post(f"{service['url']}/predict", data=buffer.getvalue(),
                             headers={"Content-Type": "image/png"}, timeout=30)  # fmt: skip
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "image_too_large"


def test_no_worker_died_after_bad_input(service) -> None:  # noqa: ANN001
    for case in BAD.values():
        requests.post(f"{service['url']}{case[2]}", data=case[0], headers={"Content-Type": case[1]}, timeout=30)
    ok = requests.post(f"{service['url']}/predict", data=png(9), headers={"Content-Type": "image/png"}, timeout=30)
    assert ok.status_code == 200
    log = service["log"].read_text()
    assert log.count("Booting worker") == 2
    assert "Worker exiting" not in log
    assert "WORKER TIMEOUT" not in log


def test_model_swap_under_load_drops_no_request(service, tmp_path: Path) -> None:  # noqa: ANN001
    url, target = service["url"], service["store"] / MODEL / "model.onnx"
    replacement = target.with_name(".model.onnx.incoming")
    shutil.copy(target, replacement)
    write_metadata(replacement, {**_metadata(target), "mlflow_run_id": "swapped-run"})
    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            response = requests.post(f"{url}/predict", data=png(4), headers={"Content-Type": "image/png"}, timeout=30)
            statuses.append(response.status_code)
            versions.append(response.json().get("model_version", ""))

    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(load)
        time.sleep(1.0)
        os.replace(replacement, target)  # write-then-rename, as the publisher does
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and versions[-8:].count("swapped-run") < 8:
            time.sleep(0.2)
        stop.set()
    assert len(statuses) > 20
    assert set(statuses) == {200}
    assert versions[-8:] == ["swapped-run"] * 8
    assert versions[0] != "swapped-run"


def _metadata(path: Path) -> dict[str, str]:
    import onnxruntime as ort

    return dict(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map)


def test_missing_model_is_not_ready_and_names_the_path(tmp_path: Path) -> None:
    server, url = start(tmp_path, tmp_path / "gunicorn.log", MODEL_NAME="nowhere", WEB_CONCURRENCY="1")
    with server:
        assert requests.get(f"{url}/health", timeout=10).status_code == 200
        response = requests.get(f"{url}/ready", timeout=10)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_not_ready"
        assert str(tmp_path / "nowhere" / "model.onnx") in response.json()["error"]["message"]
    assert str(tmp_path / "nowhere" / "model.onnx") in (tmp_path / "gunicorn.log").read_text()


def test_corrupt_model_is_not_ready(tmp_path: Path) -> None:
    (tmp_path / MODEL).mkdir()
    (tmp_path / MODEL / "model.onnx").write_bytes(b"not a model")
    server, url = start(tmp_path, tmp_path / "gunicorn.log", WEB_CONCURRENCY="1")
    with server:
        response = requests.get(f"{url}/ready", timeout=10)
        assert response.status_code == 503
        assert "cannot be loaded" in response.json()["error"]["message"]
        assert requests.post(f"{url}/predict", data=png(), headers={"Content-Type": "image/png"},
                             timeout=10).status_code == 503  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        return "gunicorn" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


@pytest.mark.parametrize(("workers", "threads"), [("2", "1"), ("1", "2")])
def test_sigterm_stops_every_worker_at_once(model_store: Path, tmp_path: Path, workers: str, threads: str) -> None:
    """A worker forked from an arbiter that had imported onnxruntime hung (one session thread) or
    aborted (two) as it exited, and outlived a killed arbiter: docker stop waited, workers leaked."""
    log = tmp_path / "gunicorn.log"
    server, url = start(model_store, log, WEB_CONCURRENCY=workers, GUNICORN_THREADS=threads)
    with server as arbiter:
        assert requests.post(f"{url}/predict", data=png(), headers={"Content-Type": "image/png"},
                             timeout=30).status_code == 200  # fmt: skip
        pids = [int(pid) for pid in Path(f"/proc/{arbiter.pid}/task/{arbiter.pid}/children").read_text().split()]
        assert len(pids) == int(workers)
        arbiter.terminate()
        assert arbiter.wait(timeout=15) == 0
    assert not [pid for pid in pids if _alive(pid)]
    text = log.read_text()
    assert not [sign for sign in ("terminate called", "exited with code", "was sent") if sign in text]


def test_the_arbiter_never_imports_onnxruntime() -> None:
    code = "import runpy, sys; runpy.run_path('inference/gunicorn_conf.py'); print('onnxruntime' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"GUNICORN_THREADS": "two"}, "GUNICORN_THREADS='two': expected a whole number of at least 1"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY='0': expected a whole number of at least 1"),
        ({"GUNICORN_TIMEOUT": "1m"}, "GUNICORN_TIMEOUT='1m': expected a whole number of at least 1"),
        ({"MODEL_VARIANT": "int4", "MAX_BATCH": "-1"},  # the worker's settings too, all at once, before a fork
         "MODEL_VARIANT='int4': expected one of auto, fp32, int8; MAX_BATCH='-1': expected a whole number"),
    ],
)  # fmt: skip
def test_a_bad_setting_stops_gunicorn_with_its_name(tmp_path: Path, settings: dict, message: str) -> None:
    command, environment = gunicorn_launch(tmp_path, free_port(), **settings)
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_openapi_fuzzing_finds_no_server_error(service, tmp_path: Path) -> None:  # noqa: ANN001
    result = subprocess.run(
        [str(BIN / "schemathesis"), "run", f"{service['url']}/openapi.json", "--checks", "not_a_server_error",
         "--max-examples", "25", "--request-timeout", "30", "--generation-deterministic"],
        capture_output=True, text=True, timeout=500, cwd=tmp_path,  # its .schemathesis cache stays out of the checkout
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]


def test_serving_settings_default_and_build_the_config() -> None:
    from inference.environment import SettingError, serving_settings
    from inference.service import ServingConfig

    config = ServingConfig.from_env({"MODEL_ROOT": "/efs/models", "MAX_BATCH": "8", "MODEL_RELOAD_CHECK_SECONDS": "0"})
    assert (config.model_root, config.model_name, config.variant) == (
        Path("/efs/models"),
        "vit_base_patch16_224",
        "auto",
    )
    assert (config.limits.max_batch, config.limits.max_bytes, config.reload_check_seconds) == (8, 10 * 1024 * 1024, 0.0)
    assert serving_settings({"MAX_BATCH": ""})["max_batch"] == 32  # empty is unset, as docker-compose passes it
    with pytest.raises(SettingError, match=r"^MODEL_RELOAD_CHECK_SECONDS='-1': expected a number of seconds >= 0$"):
        serving_settings({"MODEL_RELOAD_CHECK_SECONDS": "-1"})
