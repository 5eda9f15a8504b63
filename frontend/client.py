"""HTTP calls to either backend, turned into results a page can show: never a traceback."""

from __future__ import annotations

import csv
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

TIMEOUT_S = 30


@dataclass(frozen=True)
class Backend:
    name: str
    url: str  # base URL: <url>/predict, <url>/metadata
    api_key: str = ""

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
        found.append(Backend("Lambda API", url, env.get("LAMBDA_API_KEY", "")))
    return found


def _readable(response: requests.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} {response.reason}: {response.text[:200]}"


def _call(backend: Backend, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Answer:  # noqa: ANN401
    started = time.perf_counter()
    headers = {**backend.headers, **(headers or {})}
    try:
        response = requests.request(method, f"{backend.url}{path}", headers=headers, timeout=TIMEOUT_S, **kwargs)
    except requests.Timeout:
        return Answer(
            backend.name, False, (time.perf_counter() - started) * 1000, error=f"no answer within {TIMEOUT_S} s"
        )
    except requests.RequestException as error:
        reason = type(error).__name__.replace("Error", " error").strip()
        return Answer(backend.name, False, (time.perf_counter() - started) * 1000,
                      error=f"cannot reach {backend.url} ({reason})")  # fmt: skip
    latency = (time.perf_counter() - started) * 1000
    if not response.ok:
        return Answer(backend.name, False, latency, error=_readable(response))
    try:
        return Answer(backend.name, True, latency, data=response.json())
    except ValueError:
        return Answer(backend.name, False, latency, error=f"{backend.url} answered something that is not JSON")


def predict(backend: Backend, image: bytes, content_type: str = "image/png") -> Answer:
    return _call(backend, "POST", "/predict", data=image, headers={"Content-Type": content_type})


def metadata(backend: Backend) -> Answer:
    return _call(backend, "GET", "/metadata")


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


def labelled_images(root: Path) -> list[LabelledImage]:
    """The rows of an MHIST-layout folder whose image exists; empty when there is no such folder."""
    path = root / "annotations.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    return [
        LabelledImage(root / "images" / r["Image Name"], r["Majority Vote Label"], r["Partition"])
        for r in rows
        if (root / "images" / r["Image Name"]).is_file()
    ]


def draw(images: list[LabelledImage], label: str, partition: str, rng: random.Random) -> LabelledImage | None:
    pool = [i for i in images if i.label == label and i.partition == partition]
    return rng.choice(pool) if pool else None


def outcome(truth: str, predicted: str, positive: str = "SSA") -> str:
    """TP/FP/TN/FN wording for a labelled image."""
    if predicted == positive:
        return "true positive" if truth == positive else "false positive"
    return "false negative" if truth == positive else "true negative"
