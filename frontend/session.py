"""What a browser session keeps across reruns and pages: answers per image and backend (an image is
sent once), the backends' cards, kept uploads, and the history of predictions."""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from typing import Any

import numpy as np
import streamlit as st

from frontend import client, images
from frontend.images import Item
from inference import metrics


def state() -> MutableMapping[str, Any]:
    return st.session_state


def card(backend: client.Backend, *, refresh: bool = False) -> client.Answer:
    """The backend's ``/metadata``, asked once per session (again after a failure, or when refreshed)."""
    cards = state().setdefault("cards", {})
    if refresh or backend.url not in cards or not cards[backend.url].ok:
        cards[backend.url] = client.metadata(backend)
    return cards[backend.url]


def limits(backend: client.Backend) -> client.Limits:
    answer = card(backend)
    return client.Limits.of(answer.data) if answer.ok else client.Limits()


def thumbnail(item: Item) -> str | None:
    """The image's table thumbnail, drawn once per session."""
    thumbnails = state().setdefault("thumbnails", {})
    if item.key not in thumbnails:
        thumbnails[item.key] = images.thumbnail(item.data)
    return thumbnails[item.key]


def run_artifact(mlflow_url: str, run: str, path: str, auth: tuple[str, str] | None) -> bytes | str:
    """A run's artifact, fetched once per session (a run's artifacts do not change); a failure is asked again."""
    artifacts = state().setdefault("artifacts", {})
    if (mlflow_url, run, path) not in artifacts:
        found = client.run_artifact(mlflow_url, run, path, auth)
        if not isinstance(found, bytes):
            return found
        artifacts[mlflow_url, run, path] = found
    return artifacts[mlflow_url, run, path]


@st.cache_data(show_spinner=False, max_entries=16)
def intervals(probs: np.ndarray, truth: np.ndarray, threshold: float) -> dict[str, list[float]]:
    """Bootstrap 95% intervals of an evaluation: the same labels and answers give the same intervals."""
    return metrics.bootstrap_intervals(probs, truth, threshold, resamples=500)


def _refused(backend: client.Backend, item: Item, allowed: client.Limits) -> client.Answer | None:
    """The answer for an image too large for the backend: not sent."""
    refusal = allowed.refusal(len(item.data))
    return client.Answer(backend.name, False, 0.0, error=f"not sent: {refusal}") if refusal else None


def _remember(kind: str, backend: client.Backend, item: Item, answer: client.Answer) -> client.Answer:
    """Keep a good answer for the image and backend; a failure is asked again next time."""
    if answer.ok:
        state().setdefault("answers", {})[kind, backend.url, item.key] = answer
        state().setdefault("history", []).append(
            {
                "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                "image": item.name,
                "backend": backend.name,
                "model": answer.data.get("model"),
                "run": answer.data.get("model_version"),
                "P(SSA)": answer.data.get("probability"),
                "label": answer.data.get("label"),
                "threshold": answer.data.get("threshold"),
                "in distribution": answer.data.get("in_distribution"),
                "truth": item.truth,
            }
        )
    return answer


def known(kind: str, backend: client.Backend, item: Item) -> client.Answer | None:
    return state().get("answers", {}).get((kind, backend.url, item.key))


def ask(kind: str, backend: client.Backend, item: Item) -> client.Answer:
    """``predict`` or ``explain`` for one image, from the cache when it was answered before."""
    if (answer := known(kind, backend, item)) is not None:
        return answer
    if (refused := _refused(backend, item, limits(backend))) is not None:
        return refused
    call = client.explain if kind == "explain" else client.predict
    return _remember(kind, backend, item, call(backend, item.data, "image/*"))


def ask_many(backend: client.Backend, items: list[Item], progress: Callable[[int], None]) -> list[client.Answer]:
    """``predict`` for many images through ``/predict/batch`` in chunks; ``progress(done)`` after each."""
    allowed = limits(backend)
    answers = [known("predict", backend, item) or _refused(backend, item, allowed) for item in items]
    pending = [i for i, answer in enumerate(answers) if answer is None]
    chunked = client.Limits(allowed.max_bytes, min(allowed.max_batch, 8), allowed.max_request_bytes)
    done = len(items) - len(pending)
    progress(done)
    for group in client.chunks([len(items[i].data) for i in pending], chunked):
        indices = [pending[i] for i in group]
        for index, answer in zip(indices, client.predict_batch(backend, [items[i].data for i in indices]), strict=True):
            answers[index] = _remember("predict", backend, items[index], answer)
        done += len(indices)
        progress(done)
    return [answer for answer in answers if answer is not None]
