"""What a browser session keeps across reruns and pages: answers per image and backend (an image is
sent once), the backends' cards, kept uploads, and the history of predictions."""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from typing import Any

import streamlit as st

from frontend import client
from frontend.images import Item


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
    if refusal := limits(backend).refusal(len(item.data)):
        return client.Answer(backend.name, False, 0.0, error=f"not sent: {refusal}")
    call = client.explain if kind == "explain" else client.predict
    return _remember(kind, backend, item, call(backend, item.data, "image/*"))


def ask_many(backend: client.Backend, items: list[Item], progress: Callable[[int], None]) -> list[client.Answer]:
    """``predict`` for many images through ``/predict/batch`` in chunks; ``progress(done)`` after each."""
    answers: list[client.Answer | None] = [known("predict", backend, item) for item in items]
    allowed = limits(backend)
    for i, item in enumerate(items):
        if answers[i] is None and (refusal := allowed.refusal(len(item.data))):
            answers[i] = client.Answer(backend.name, False, 0.0, error=f"not sent: {refusal}")
    pending = [i for i, answer in enumerate(answers) if answer is None]
    chunked = client.Limits(allowed.max_bytes, min(allowed.max_batch, 8), allowed.max_request_bytes)
    done = len(items) - len(pending)
    progress(done)
    for group in client.chunks([len(items[pending[i]].data) for i in range(len(pending))], chunked):
        indices = [pending[i] for i in group]
        for index, answer in zip(indices, client.predict_batch(backend, [items[i].data for i in indices]), strict=True):
            answers[index] = _remember("predict", backend, items[index], answer)
        done += len(indices)
        progress(done)
    return [answer for answer in answers if answer is not None]
