"""Request batching: concurrent requests share one run of the graph, and each keeps its own answer."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bench.common import sample_png
from inference import errors
from inference.batching import Batching, Gatherer
from inference.predictor import FILES, Predictor

MODEL = "mlp-64-32"


def concurrently(calls: list) -> list:
    """Each call on its own thread, all started together; their results (or exceptions) in order."""
    results: list = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def call(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except Exception as error:  # noqa: BLE001 - the test looks at it
            results[i] = error

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("file", ["fp32", "int8"])
def test_concurrent_requests_share_runs_and_keep_their_own_answers(model_store: Path, file: str) -> None:
    path = model_store / MODEL / FILES[file]
    alone = Predictor.load(path)
    gathered = Predictor.load(path, batching=Batching(wait_ms=200, max_images=8))
    real_run, runs = gathered.graph.run, []

    class SlowGraph:  # the real graph, slowed so that requests pile up behind a run
        outputs = gathered.graph.outputs

        def run(self, names: list[str], batch: np.ndarray) -> list[np.ndarray]:
            runs.append(len(batch))
            time.sleep(0.05)
            return real_run(names, batch)

    gathered.graph = SlowGraph()
    requests = [[sample_png(seed, 64)] for seed in range(6)] + [[sample_png(6, 64), sample_png(7, 64)]]
    answers = concurrently([lambda images=images: gathered.predict(images) for images in requests])
    assert sum(runs) == 8  # every image once
    assert len(runs) < len(requests)  # and fewer runs than requests
    assert list(gathered.gatherer.runs) == runs
    assert (gathered.gatherer.total_runs, gathered.gatherer.total_images) == (len(runs), 8)
    for images, got in zip(requests, answers, strict=True):
        expected = alone.predict(images)
        assert [a["probability"] for a in got] == pytest.approx([a["probability"] for a in expected], abs=1e-6)
        assert [a["ood_score"] for a in got] == pytest.approx([a["ood_score"] for a in expected], abs=1e-4)


def test_a_lone_request_does_not_wait_for_company(model_store: Path) -> None:
    """The gathering window is only spent while another request is decoding."""
    gathered = Predictor.load(model_store / MODEL / FILES["int8"], batching=Batching(wait_ms=5000))
    started = time.perf_counter()
    gathered.predict([sample_png(0, 64)])
    assert time.perf_counter() - started < 2.5
    assert list(gathered.gatherer.runs) == [1]


def test_a_bad_request_fails_alone(model_store: Path) -> None:
    """A request that cannot be decoded is refused before it joins a batch; its neighbours are answered."""
    gathered = Predictor.load(model_store / MODEL / FILES["int8"], batching=Batching(wait_ms=100))
    calls = [lambda: gathered.predict([b"not an image"])] + [lambda: gathered.predict([sample_png(1, 64)])] * 3
    bad, *good = concurrently(calls)
    assert isinstance(bad, errors.ServingError)
    assert bad.code == "invalid_image"
    assert all(answer[0]["label"] in {"SSA", "HP"} for answer in good)


def test_a_run_that_fails_is_retried_request_by_request() -> None:
    """The graph's own failure on one request's images (here: a NaN) reaches that request only."""

    def graph(names: list[str], batch: np.ndarray) -> list[np.ndarray]:
        if np.isnan(batch).any():
            raise RuntimeError("NaN in the input")
        return [batch.sum(axis=1) * (k + 1) for k in range(len(names))]

    gatherer = Gatherer(graph, wait_s=0.2, max_images=8)
    batches = [np.full((1, 3), float(i)) for i in range(4)] + [np.array([[np.nan, 0, 0]])]
    entered = threading.Barrier(len(batches))

    def request(batch: np.ndarray, names: list[str]) -> list[np.ndarray]:
        with gatherer.preparing():
            entered.wait()  # every request is decoding before the first one queues
        return gatherer.run(names, batch)

    results = concurrently([lambda b=b, k=k: request(b, ["a", "b"][: 1 + k % 2]) for k, b in enumerate(batches)])
    assert isinstance(results[-1], RuntimeError)
    for i, result in enumerate(results[:-1]):
        assert [r.tolist() for r in result] == [[3.0 * i], [6.0 * i]][: 1 + i % 2]
    assert sum(gatherer.runs) == 4  # runs that answered: each good image once, whatever was gathered with it


def test_a_leader_waits_for_the_company_of_the_last_run() -> None:
    """Under load a service's clients come back one by one through HTTP, each still outside the process when
    the first is ready: the leader waits (up to ``wait_s``) for as many requests as were here during the last
    run, so a convoy stays whole instead of splitting into ever smaller runs."""

    def graph(names: list[str], batch: np.ndarray) -> list[np.ndarray]:
        time.sleep(0.02)
        return [batch.sum(axis=1) for _ in names]

    gatherer = Gatherer(graph, wait_s=0.5, max_images=8)
    entered = threading.Barrier(4)

    def client(i: int) -> float:
        with gatherer.preparing():
            entered.wait()  # the first round arrives together
        gatherer.run(["p"], np.full((1, 3), float(i)))
        time.sleep(0.03 * i)  # the second comes back staggered, none decoding when the first is ready
        return gatherer.run(["p"], np.full((1, 3), float(i)))[0][0]

    assert concurrently([lambda i=i: client(i) for i in range(4)]) == [0.0, 3.0, 6.0, 9.0]
    assert list(gatherer.runs) == [4, 4]
    started = time.perf_counter()
    gatherer.run(["p"], np.zeros((1, 3)))  # the load gone: one wait for company that does not come
    assert 0.5 <= time.perf_counter() - started < 2.0
    started = time.perf_counter()
    gatherer.run(["p"], np.zeros((1, 3)))  # and none after it
    assert time.perf_counter() - started < 0.4
    assert list(gatherer.runs) == [4, 4, 1, 1]
