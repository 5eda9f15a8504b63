"""HTTP calls to either backend, turned into results a page can show: never a traceback."""

from __future__ import annotations

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


def backends_from_env(env: dict[str, str] | None = None) -> list[Backend]:
    """The EC2 service (default: ``make serve`` on 127.0.0.1:8080) and, when configured, the Lambda API."""
    env = dict(os.environ if env is None else env)
    found = [Backend("EC2 service", env.get("EC2_SERVICE_URL", "http://127.0.0.1:8080").rstrip("/"))]
    if env.get("LAMBDA_API_URL"):
        url = env["LAMBDA_API_URL"].rstrip("/").removesuffix("/predict")
        found.append(Backend("Lambda API", url, env.get("LAMBDA_API_KEY", ""), "LAMBDA_API_URL"))
    return found


def _readable(response: requests.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} {response.reason}: {response.text[:200]}"


def _call(
    backend: Backend,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    expected: tuple[str, ...] = (),
    **kwargs: Any,  # noqa: ANN401
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
        return failed(_readable(response))
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
