"""HTTP calls to either backend, turned into results a page can show: never a traceback."""

from __future__ import annotations

import base64
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from inference.annotations import AnnotationsError, read_annotations

TIMEOUT_S = 30
PREDICTION_FIELDS = ("label", "probability", "threshold", "model")  # what a page shows of /predict
CARD_FIELDS = ("model_name", "threshold")


@dataclass(frozen=True)
class Backend:
    name: str
    url: str  # base URL: <url>/predict, <url>/metadata
    api_key: str = ""
    setting: str = "EC2_SERVICE_URL"  # where the URL came from, for error messages

    @property
    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key} if self.api_key else {}


@dataclass
class Answer:
    backend: str
    ok: bool
    latency_ms: float
    data: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    detail: str = ""  # the service's own words behind ``error``, for an expander


def backends_from_env(env: dict[str, str] | None = None) -> list[Backend]:
    """The EC2 service (default: ``make serve`` on 127.0.0.1:8080) and, when configured, the Lambda API."""
    env = dict(os.environ if env is None else env)
    found = [Backend("EC2 service", env.get("EC2_SERVICE_URL", "http://127.0.0.1:8080").rstrip("/"))]
    if env.get("LAMBDA_API_URL"):
        url = env["LAMBDA_API_URL"].rstrip("/").removesuffix("/predict")
        found.append(Backend("Lambda API", url, env.get("LAMBDA_API_KEY", ""), "LAMBDA_API_URL"))
    return found


# What to do about a refusal, by its code, for the person at the browser: the API says what; this says where.
HINTS = {
    "invalid_api_key": "check LAMBDA_API_KEY: it must be the key of the API's usage plan",
    "gateway_refused": "check LAMBDA_API_URL and LAMBDA_API_KEY",
    "throttled": "the API's rate limit: wait a moment and try again",
    "quota_exceeded": "the usage plan's daily quota is spent",
    "model_not_ready": "the service is up but has no model: its operator must publish one",
    "gateway_error": "the Lambda failed or took too long: try again, and see its CloudWatch logs",
}


def _readable(response: requests.Response) -> tuple[str, str]:
    """(one line for the page, the service's own detail or ""): our API's error JSON, or what API Gateway
    and proxies send (``{"message": "Forbidden"}``, an HTML page)."""
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        reason = response.reason or "error"
        hint = {403: HINTS["gateway_refused"], 413: "the image is too large for this backend"}.get(
            response.status_code, "not an answer of the MHIST API"
        )
        return f"{response.status_code} {reason}: {hint}", response.text[:300]
    if code == "model_not_ready":  # the server's file paths are its operator's business, not the page's
        return f"{response.status_code} {code}: {HINTS[code]}", message
    hint = HINTS.get(code)
    return f"{response.status_code} {code}: {message}" + (f" ({hint})" if hint else ""), ""


def _call(
    backend: Backend,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    expected: tuple[str, ...] = (),
    **kwargs: Any,
) -> Answer:
    """One request; ``expected`` are the fields an answer of our API has, so another service's JSON is named."""
    started = time.perf_counter()

    def failed(error: str) -> Answer:
        return Answer(backend.name, False, (time.perf_counter() - started) * 1000, error=error)

    headers = {**backend.headers, **(headers or {})}
    try:
        response = requests.request(method, f"{backend.url}{path}", headers=headers, timeout=TIMEOUT_S, **kwargs)
    except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL):
        return failed(f"{backend.setting} {backend.url!r} is not an http:// or https:// URL")
    except requests.Timeout:
        return failed(f"no answer within {TIMEOUT_S} s")
    except requests.RequestException as error:
        return failed(f"cannot reach {backend.url} ({type(error).__name__.replace('Error', ' error').strip()})")
    if not response.ok:
        line, detail = _readable(response)
        answer = failed(line)
        answer.detail = detail
        return answer
    try:
        data = response.json()
    except ValueError:
        return failed(f"{backend.url} answered something that is not JSON")
    missing = [key for key in expected if not isinstance(data, dict) or key not in data]
    if missing:
        return failed(f"{backend.url}{path} answered JSON without {', '.join(missing)}: is it the MHIST API?")
    return Answer(backend.name, True, (time.perf_counter() - started) * 1000, data=data)


def predict(backend: Backend, image: bytes, content_type: str = "image/png") -> Answer:
    return _call(backend, "POST", "/predict", {"Content-Type": content_type}, PREDICTION_FIELDS, data=image)


def explain(backend: Backend, image: bytes, content_type: str = "image/png") -> Answer:
    """The prediction with its heatmap (``explanation``): one call, so the two always agree."""
    fields = (*PREDICTION_FIELDS, "explanation")
    return _call(backend, "POST", "/explain", {"Content-Type": content_type}, fields, data=image)


def metadata(backend: Backend) -> Answer:
    return _call(backend, "GET", "/metadata", expected=CARD_FIELDS)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low, high = int(position), min(int(position) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: str  # HP or SSA
    partition: str


def labelled_folder(root: Path) -> tuple[list[LabelledImage], str]:
    """The rows of the MHIST folder at ``root`` (MHIST_ROOT) whose image exists, or why there are none."""
    try:
        records = read_annotations(root)
    except AnnotationsError as error:
        return [], f"MHIST_ROOT: {error}"
    found = [LabelledImage(root / "images" / r.image, r.class_name, r.partition) for r in records]
    found = [image for image in found if image.path.is_file()]
    return found, "" if found else f"MHIST_ROOT: none of the {len(records)} images listed is in {root / 'images'}"


def draw(images: list[LabelledImage], label: str, partition: str, rng: random.Random) -> LabelledImage | None:
    pool = [i for i in images if i.label == label and i.partition == partition]
    return rng.choice(pool) if pool else None


def outcome(truth: str, predicted: str, positive: str = "SSA") -> str:
    """TP/FP/TN/FN wording for a labelled image."""
    if predicted == positive:
        return "true positive" if truth == positive else "false positive"
    return "false negative" if truth == positive else "true negative"


@dataclass(frozen=True)
class Limits:
    """What a backend accepts, from its card (``limits``); the EC2 service's defaults until it has answered."""

    max_bytes: int = 10 * 1024 * 1024
    max_batch: int = 32
    max_request_bytes: int = 64 * 1024 * 1024

    @classmethod
    def of(cls, card: dict[str, Any]) -> Limits:
        served = card.get("limits") if isinstance(card.get("limits"), dict) else {}
        known = {k: int(v) for k, v in served.items() if k in cls.__dataclass_fields__ and isinstance(v, int)}
        return cls(**known)

    def refusal(self, size: int) -> str:
        """Why an image of ``size`` bytes is not sent, or ""."""
        if size > self.max_bytes:
            return f"{size / 2**20:.1f} MB; this backend takes at most {self.max_bytes / 2**20:.1f} MB per image"
        return ""


def chunks(sizes: list[int], limits: Limits) -> list[list[int]]:
    """Indices of ``sizes`` grouped into requests of at most ``max_batch`` images and ``max_request_bytes``
    of JSON (base64 is 4/3 of the bytes)."""
    groups: list[list[int]] = [[]]
    used = 0
    for index, size in enumerate(sizes):
        cost = size * 4 // 3 + 64
        if groups[-1] and (len(groups[-1]) == limits.max_batch or used + cost > limits.max_request_bytes - 1024):
            groups.append([])
            used = 0
        groups[-1].append(index)
        used += cost
    return [group for group in groups if group]


def predict_batch(backend: Backend, images: list[bytes]) -> list[Answer]:
    """One ``/predict/batch`` call, an answer per image; when the batch is refused (one bad image refuses
    it all), each image alone, so that one bad file costs one row."""
    body = {"images": [base64.b64encode(image).decode() for image in images]}
    answer = _call(backend, "POST", "/predict/batch", expected=("predictions",), json=body)
    predictions = answer.data.get("predictions") if answer.ok else None
    if isinstance(predictions, list) and len(predictions) == len(images):
        each = answer.latency_ms / len(images)
        return [Answer(backend.name, True, each, data=prediction) for prediction in predictions]
    if answer.error[:3] in ("403", "429", "503") or answer.error.startswith(("cannot reach", "no answer")):
        return [answer] * len(images)  # the backend, not an image: asking image by image would not help
    one = ({"image": item} for item in body["images"])
    return [_call(backend, "POST", "/predict", expected=PREDICTION_FIELDS, json=image) for image in one]


def run_artifact(mlflow_url: str, run_id: str, path: str, auth: tuple[str, str] | None = None) -> bytes | str:
    """An artifact of a run from the MLflow server's ``/get-artifact``, or why it could not be had."""
    url = f"{mlflow_url.rstrip('/')}/get-artifact"
    try:
        response = requests.get(url, params={"path": path, "run_uuid": run_id}, auth=auth, timeout=TIMEOUT_S)
    except requests.RequestException as error:
        return f"cannot reach MLflow at {mlflow_url} ({type(error).__name__})"
    if response.status_code in (401, 403):
        return f"MLflow refused the request ({response.status_code}): check MLFLOW_TRACKING_USERNAME and PASSWORD"
    if not response.ok:
        return f"not in run {run_id} ({response.status_code})"
    return response.content
