"""The real gunicorn service on 127.0.0.1, serving a model exported from a tiny trained model."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import requests
from PIL import Image

from bench.common import sample_png as png
from inference.responses import Prediction
from tests.servers import free_port, gunicorn, gunicorn_launch
from training.onnx_export import write_metadata

pytestmark = pytest.mark.slow
MODEL = "mlp-64-32"
MAX_BYTES = 300_000


def jpeg(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png(seed))).save(buffer, "JPEG")
    return buffer.getvalue()


def start(store: Path, log: Path, **env: str):
    settings = {
        "MODEL_NAME": MODEL,
        "MODEL_VARIANT": "fp32",
        "MAX_IMAGE_BYTES": str(MAX_BYTES),
        "MAX_BATCH": "4",
        "MAX_REQUEST_PIXELS": str(3 * 224 * 224),
        "MODEL_RELOAD_CHECK_SECONDS": "0.2",
        "MODEL_RUNTIME": "onnxruntime",  # every worker the same runtime: answers compared exactly across requests
    }
    return gunicorn(store, log, **{**settings, **env})


@pytest.fixture(scope="module")
def service(model_store: Path, tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("service")
    store = Path(shutil.copytree(model_store, base / "models"))
    server, url = start(store, base / "gunicorn.log")
    with server:
        yield {"url": url, "store": store, "log": base / "gunicorn.log"}


def test_health_ready_metadata_openapi(service) -> None:
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


def test_predict_raw_multipart_and_json_agree(service) -> None:
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


def test_batch_gives_one_answer_per_image_in_order(service) -> None:
    url = service["url"]
    images = [png(i) for i in range(3)]
    singles = [
        requests.post(f"{url}/predict", data=i, headers={"Content-Type": "image/png"}, timeout=30).json()
        for i in images
    ]
    batch = requests.post(
        f"{url}/predict/batch", json={"images": [base64.b64encode(i).decode() for i in images]}, timeout=30
    )
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
    "too many images": (
        json.dumps({"images": [base64.b64encode(png(0, 16)).decode()] * 5}).encode(),
        "application/json",
        "/predict/batch",
        413,
        "too_many_images",
    ),
    # a RecursionError and a ValueError in Python's json: 500s before
    "json nested 100,000 deep": (b"[" * 100_000, "application/json", "/predict", 400, "invalid_json"),
    "a 5,000-digit integer": (b'{"image": ' + b"7" * 5000 + b"}", "application/json", "/predict", 400, "invalid_json"),
    "a multipart form without its boundary": (b"--x\r\n", "multipart/form-data", "/predict", 400, "invalid_multipart"),
    "more pixels than a request may hold": (
        json.dumps({"images": [base64.b64encode(png(i)).decode() for i in range(4)]}).encode(),
        "application/json",
        "/predict/batch",
        413,
        "request_too_large",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_a_4xx_with_a_code(service, case: str) -> None:
    body, content_type, path, status, code = BAD[case]
    response = requests.post(f"{service['url']}{path}", data=body, headers={"Content-Type": content_type}, timeout=30)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "Traceback" not in response.text


def test_decompression_bomb_is_refused(service) -> None:
    buffer = io.BytesIO()
    Image.new("L", (9_000, 9_000)).save(buffer, "PNG")  # 81 Mpx
    response = requests.post(
        f"{service['url']}/predict", data=buffer.getvalue(), headers={"Content-Type": "image/png"}, timeout=30
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "image_too_large"


def test_no_worker_died_after_bad_input(service) -> None:
    for case in BAD.values():
        requests.post(f"{service['url']}{case[2]}", data=case[0], headers={"Content-Type": case[1]}, timeout=30)
    ok = requests.post(f"{service['url']}/predict", data=png(9), headers={"Content-Type": "image/png"}, timeout=30)
    assert ok.status_code == 200
    log = service["log"].read_text()
    assert log.count("Booting worker") == 2
    assert "Worker exiting" not in log
    assert "WORKER TIMEOUT" not in log


def test_model_swap_under_load_drops_no_request(service, tmp_path: Path) -> None:
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
        message = response.json()["error"]["message"]
        assert str(tmp_path / "nowhere" / "model.onnx") in message
        assert message.count("no model is loaded") == 1  # it once read "no model is loaded (no model is loaded (..."
    assert str(tmp_path / "nowhere" / "model.onnx") in (tmp_path / "gunicorn.log").read_text()


def test_corrupt_model_is_not_ready(tmp_path: Path) -> None:
    (tmp_path / MODEL).mkdir()
    (tmp_path / MODEL / "model.onnx").write_bytes(b"not a model")
    server, url = start(tmp_path, tmp_path / "gunicorn.log", WEB_CONCURRENCY="1")
    with server:
        response = requests.get(f"{url}/ready", timeout=10)
        assert response.status_code == 503
        assert "cannot be loaded" in response.json()["error"]["message"]
        assert (
            requests.post(f"{url}/predict", data=png(), headers={"Content-Type": "image/png"}, timeout=10).status_code
            == 503
        )


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
        assert (
            requests.post(f"{url}/predict", data=png(), headers={"Content-Type": "image/png"}, timeout=30).status_code
            == 200
        )
        pids = [int(pid) for pid in Path(f"/proc/{arbiter.pid}/task/{arbiter.pid}/children").read_text().split()]
        assert len(pids) == int(workers)
        arbiter.terminate()
        assert arbiter.wait(timeout=15) == 0
    assert not [pid for pid in pids if _alive(pid)]
    text = log.read_text()
    assert not [sign for sign in ("terminate called", "exited with code", "was sent") if sign in text]


def test_the_arbiter_never_imports_onnxruntime() -> None:
    code = "import runpy, sys; runpy.run_path('inference/gunicorn_conf.py'); print('onnxruntime' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    "settings",
    [
        {"GUNICORN_THREADS": "two"},
        {"WEB_CONCURRENCY": "0"},
        {"GUNICORN_TIMEOUT": "1m"},
        {"MODEL_VARIANT": "int4", "MAX_BATCH": "-1"},  # the worker's settings too, all at once, before a fork
        {"BATCH_WAIT_MS": "5s", "BATCH_MAX_IMAGES": "0"},
        {"BATCH_WAIT_MS": "1001"},
    ],
)
def test_a_bad_setting_stops_gunicorn_with_its_name(tmp_path: Path, settings: dict) -> None:
    command, environment = gunicorn_launch(tmp_path, free_port(), **settings)
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if "=" in line and "'" in line]
    assert [problem.split(":")[0] for problem in line.split("; ")] == [f"{k}={v!r}" for k, v in settings.items()]
    assert "Traceback" not in result.stderr


def test_serving_settings_default_and_build_the_config() -> None:
    from inference.environment import ServingSettings, SettingError
    from inference.service import ServingConfig

    config = ServingConfig.from_env({"MODEL_ROOT": "/efs/models", "MAX_BATCH": "8", "MODEL_RELOAD_CHECK_SECONDS": "0"})
    assert (config.model_root, config.model_name, config.variant) == (
        Path("/efs/models"),
        "vit_base_patch16_224",
        "auto",
    )
    assert (config.limits.max_batch, config.limits.max_bytes, config.reload_check_seconds) == (8, 10 * 1024 * 1024, 0.0)
    assert ServingSettings.read({"MAX_BATCH": ""}).max_batch == 32  # empty is unset, as docker-compose passes it
    assert (config.runtime, config.batching.wait_ms, config.batching.max_images) == ("auto", 0.0, 8)  # the Lambda's
    batched = ServingConfig.from_env({"BATCH_WAIT_MS": "2.5", "BATCH_MAX_IMAGES": "4", "MODEL_RUNTIME": "onnxruntime"})
    assert (batched.runtime, batched.batching.wait_ms, batched.batching.max_images) == ("onnxruntime", 2.5, 4)
    with pytest.raises(SettingError, match=r"^MODEL_RELOAD_CHECK_SECONDS='-1': Input should be greater than or equal"):
        ServingSettings.read({"MODEL_RELOAD_CHECK_SECONDS": "-1"})


def test_base64_wrapped_as_gnu_base64_prints_it_is_accepted(service: dict) -> None:
    """RFC 2045 allows line breaks inside base64; `base64 image.png` wraps at 76 columns."""
    image = png(6)
    wrapped = "\n".join(textwrap.wrap(base64.b64encode(image).decode(), 76))
    answer = requests.post(f"{service['url']}/predict", json={"image": wrapped}, timeout=30)
    raw = requests.post(f"{service['url']}/predict", data=image, headers={"Content-Type": "image/png"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["probability"] == raw.json()["probability"]


def test_each_route_refuses_a_body_by_its_length_before_reading_it(service: dict) -> None:
    """The service read up to the batch limit (320 MiB) before refusing a body over one image's."""
    host, port = service["url"].removeprefix("http://").split(":")
    for path, length in (("/predict", MAX_BYTES * 4 // 3 + 64 * 1024 + 1), ("/predict/batch", 64 * 1024 * 1024 + 1)):
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                f"Content-Length: {length}\r\n\r\n".encode()
            )
            started = time.monotonic()
            answer = b""  # no body was sent: only a refusal can come back
            while b'"}}' not in answer and (chunk := connection.recv(65536)):
                answer += chunk
            answer = answer.decode()
        assert time.monotonic() - started < 5
        assert answer.startswith("HTTP/1.1 413"), answer[:200]
        assert '"code":"payload_too_large"' in answer.replace(" ", "")


def test_a_wrong_method_is_405_with_allow_and_a_trailing_slash_is_the_route(service: dict) -> None:
    wrong = requests.get(f"{service['url']}/predict", timeout=10)
    assert wrong.status_code == 405
    assert "POST" in wrong.headers["Allow"]
    assert wrong.json()["error"]["code"] == "method_not_allowed"
    slash = requests.post(f"{service['url']}/predict/", data=png(1), headers={"Content-Type": "image/png"}, timeout=30)
    assert slash.status_code == 200


def test_every_answer_is_what_the_openapi_document_says(service: dict) -> None:
    """The document's schemas are the response models' own; each route's real answer meets its schema."""
    url, raw = service["url"], {"Content-Type": "image/png"}
    document = requests.get(f"{url}/openapi.json", timeout=10).json()
    assert document["openapi"] == "3.1.0"
    batch = {"images": [base64.b64encode(png(1)).decode(), base64.b64encode(png(2)).decode()]}
    answers = {
        ("/predict", "post"): requests.post(f"{url}/predict", data=png(1), headers=raw, timeout=30),
        ("/predict/batch", "post"): requests.post(f"{url}/predict/batch", json=batch, timeout=30),
        ("/explain", "post"): requests.post(f"{url}/explain", data=png(3), headers=raw, timeout=60),
        ("/ready", "get"): requests.get(f"{url}/ready", timeout=10),
        ("/health", "get"): requests.get(f"{url}/health", timeout=10),
    }
    for (path, method), answer in answers.items():
        assert answer.status_code == 200, path
        schema = document["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        jsonschema.validate(answer.json(), {**schema, "components": document["components"]})
    refused = requests.post(f"{url}/predict", data=b"not an image", headers=raw, timeout=10)
    schema = document["paths"]["/predict"]["post"]["responses"]["400"]["content"]["application/json"]["schema"]
    jsonschema.validate(refused.json(), {**schema, "components": document["components"]})
    assert document["components"]["schemas"]["Prediction"]["required"] == list(Prediction.model_fields)


def test_the_openapi_document_states_the_limits(service: dict) -> None:
    document = requests.get(f"{service['url']}/openapi.json", timeout=10).json()
    batch = document["paths"]["/predict/batch"]["post"]["requestBody"]["content"]
    images = batch["application/json"]["schema"]["properties"]["images"]
    assert (images["minItems"], images["maxItems"]) == (1, 4)
    assert batch["multipart/form-data"]["schema"]["required"] == ["image"]


def test_every_request_and_model_load_is_a_json_log_line(service: dict) -> None:
    requests.post(
        f"{service['url']}/predict",
        data=png(2),
        headers={"Content-Type": "image/png", "X-Request-Id": "req-under-test"},
        timeout=30,
    )
    lines = [json.loads(line) for line in service["log"].read_text().splitlines() if line.startswith("{")]
    (line,) = [entry for entry in lines if entry.get("request_id") == "req-under-test"]
    assert {k: line[k] for k in ("level", "message", "method", "path", "status", "model")} == {
        "level": "info",
        "message": "request",
        "method": "POST",
        "path": "/predict",
        "status": 200,
        "model": MODEL,
    }
    assert line["latency_ms"] > 0
    assert line["time"].endswith("+00:00")
    loads = [entry for entry in lines if entry["message"].startswith("serving ")]
    assert len(loads) >= 2  # one per worker
    assert all(entry["model"] == MODEL and entry["file"].endswith("model.onnx") for entry in loads)


def test_gunicorn_writes_no_control_socket(model_store: Path, tmp_path: Path) -> None:
    """gunicorn 26 opens a control socket in ~/.gunicorn/ by default: servers sharing a HOME clobber it."""
    server, url = start(model_store, tmp_path / "gunicorn.log", WEB_CONCURRENCY="1", HOME=str(tmp_path))
    with server:
        assert requests.get(f"{url}/health", timeout=10).status_code == 200
    assert not (tmp_path / ".gunicorn").exists()


def test_the_last_good_model_serves_across_worker_restarts(model_store: Path, tmp_path: Path) -> None:
    """A corrupt new file fell back to the model in memory only until a worker restarted: then 61% of
    requests got 503 and /ready flapped. Each worker now keeps the last model that loaded."""
    store = Path(shutil.copytree(model_store, tmp_path / "models"))
    log = tmp_path / "gunicorn.log"
    server, url = start(store, log)
    with server as arbiter:
        assert requests.get(f"{url}/ready", timeout=10).status_code == 200
        (store / MODEL / ".incoming").write_bytes(b"not a model")
        os.replace(store / MODEL / ".incoming", store / MODEL / "model.onnx")
        time.sleep(1)
        workers = [int(pid) for pid in Path(f"/proc/{arbiter.pid}/task/{arbiter.pid}/children").read_text().split()]
        for pid in workers:  # as gunicorn does after max_requests, a timeout or a crash
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and log.read_text().count("Booting worker") < 4:
            time.sleep(0.2)
        time.sleep(2)
        answers = [
            requests.post(f"{url}/predict", data=png(i % 3), headers={"Content-Type": "image/png"}, timeout=30)
            for i in range(30)
        ]
        readiness = [requests.get(f"{url}/ready", timeout=10) for _ in range(10)]
    assert [a.status_code for a in answers] == [200] * 30
    assert {r.status_code for r in readiness} == {200}
    assert all("cannot be loaded" in r.json()["problem"] for r in readiness)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    fallbacks = [entry for entry in lines if entry["message"].startswith("serving the last model that loaded")]
    assert len(fallbacks) >= 2  # both new workers, each saying which file and why
    assert all(entry["model"] == MODEL and "cannot be loaded" in entry["message"] for entry in fallbacks)


def test_explain_shows_where_the_evidence_is(service) -> None:
    """Occlusion on the MLP: the class signal sits in one quarter of the image, and so does most of the
    map's positive mass. Deterministic: the same map twice."""
    from training.demo_data import draw_evidence_image

    image, (left, top, right, bottom) = draw_evidence_image(seed=2)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    answers = [
        requests.post(
            f"{service['url']}/explain", data=buffer.getvalue(), headers={"Content-Type": "image/png"}, timeout=60
        )
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    first, second = (a.json() for a in answers)
    explanation = first["explanation"]
    assert (explanation["method"], explanation["grid"]) == ("occlusion", [7, 7])
    assert explanation["map"] == second["explanation"]["map"]
    assert (
        first["probability"]
        == requests.post(
            f"{service['url']}/predict", data=buffer.getvalue(), headers={"Content-Type": "image/png"}, timeout=30
        ).json()["probability"]
    )
    heat = np.clip(np.array(explanation["map"]), 0, None)
    cells = np.linspace(0, 224, 8)
    centres = (cells[:-1] + cells[1:]) / 2
    inside = np.outer((centres >= top) & (centres < bottom), (centres >= left) & (centres < right))
    assert heat[inside].sum() / heat.sum() > 0.6  # a quarter of the cells hold most of the evidence
    overlay = Image.open(io.BytesIO(base64.b64decode(explanation["overlay_png"])))
    assert overlay.size == (224, 224)
    assert explanation["latency_ms"] > 0


def test_concurrent_requests_on_one_worker_share_a_run(model_store: Path, tmp_path: Path) -> None:
    """BATCH_WAIT_MS on: one gunicorn worker, a thread per image of a run by default; 8 clients at once
    are gathered, and each still gets the answer its image gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    server, url = start(model_store, tmp_path / "gunicorn.log", WEB_CONCURRENCY="1", BATCH_WAIT_MS="200")
    images = [png(seed) for seed in range(8)]

    def ask(image: bytes) -> float:
        answer = requests.post(f"{url}/predict", data=image, headers={"Content-Type": "image/png"}, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()["probability"]

    with server:
        alone = [ask(image) for image in images]
        with ThreadPoolExecutor(len(images)) as pool:
            together = [list(pool.map(ask, images)) for _ in range(3)]
        batching = requests.get(f"{url}/metadata", timeout=10).json()["batching"]
    assert all(run == pytest.approx(alone, abs=1e-6) for run in together)
    assert (batching["wait_ms"], batching["max_images"]) == (200.0, 8)
    assert batching["largest_run"] > 1
    assert batching["runs"] < 8 + 3 * 8  # fewer runs than requests
    assert (batching["total_runs"], batching["total_images"]) == (batching["runs"], 8 + 3 * 8)  # every image once
