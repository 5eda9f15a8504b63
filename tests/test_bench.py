"""Benchmarks are never part of the test run; this proves each one works at a tiny size."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from bench import cold_start, inference, serving, training
from bench.common import model_store


@pytest.fixture(scope="module")
def bench_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight MLP exported as training exports (fp32 + int8, serving metadata)."""
    return model_store(["mlp-small"], tmp_path_factory.mktemp("bench-models"))


def test_inference_benchmark_runs_and_writes_its_table(bench_store: Path, tmp_path: Path) -> None:
    args = ["--models", "mlp-small", "--batches", "1", "2", "--repeats", "2", "--probe-mb", "64"]
    result = inference.main([*args, "--store", str(bench_store), "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "inference.json").read_text())["rows"]
    assert [(r["runtime"], r["batch"]) for r in rows] == [(rt, b) for rt in inference.RUNTIMES for b in (1, 2)]
    assert all(r["median_ms_per_image"] > 0 and r["images_per_s"] > 0 for r in rows)
    assert result["ceilings"]["matmul_gflops"] == max(result["probes"]["matmul_gflops"].values()) > 0
    assert result["ceilings"]["memory_gbps"] == max(result["probes"]["memory_gbps"].values()) > 0
    assert any(name.startswith("onnxruntime") for name in result["probes"]["matmul_gflops"])
    table = (tmp_path / "inference.md").read_text()
    assert "| mlp-small | onnx-int8 | 1 |" in table
    assert "floor ms/img" in table
    assert "AMD" in table or "CPUs" in table


def test_cold_start_benchmark_times_fresh_processes(bench_store: Path, tmp_path: Path) -> None:
    args = ["--models", "mlp-small", "--variants", "int8", "--repeats", "1", "--store", str(bench_store)]
    result = cold_start.main([*args, "--out", str(tmp_path)])
    rows = {row["door"]: row for row in result["rows"]}
    assert set(rows) == {"lambda", "gunicorn"}
    lam = rows["lambda"]
    assert lam["runs"][0]["file"] == "model.int8.onnx"
    assert 0 < lam["load_s"] <= lam["init_s"] < lam["median_s"]
    assert lam["interpreter_s"] + lam["imports_s"] + lam["init_s"] + lam["first_request_s"] <= lam["median_s"] * 1.05
    assert rows["gunicorn"]["median_s"] > 0
    assert "| mlp-small | int8 | lambda |" in (tmp_path / "cold_start.md").read_text()


def test_serving_benchmark_loads_gunicorn_without_failures(bench_store: Path, tmp_path: Path) -> None:
    args = ["--models", "mlp-small", "--concurrency", "1", "2", "--seconds", "1", "--store", str(bench_store)]
    result = serving.main([*args, "--out", str(tmp_path)])
    (model,) = result["models"]
    assert [level["concurrency"] for level in model["levels"]] == [1, 2]
    assert model["failures"] == 0
    assert all(level["requests"] > 0 and level["p50_ms"] <= level["p99_ms"] for level in model["levels"])
    assert all(level["server_p50_ms"] > 0 and level["raw_per_s"] > 0 for level in model["levels"])
    assert "goal >= 90%" in (tmp_path / "serving.md").read_text()


def test_closed_loop_counts_failures_and_keeps_going() -> None:
    calls = itertools.count()  # next() on it is atomic; a generator's is not

    def flaky(state: dict) -> str | None:
        n = next(calls)
        if n % 3 == 0:
            raise ConnectionError("refused")
        return "HTTP 503: busy" if n % 3 == 1 else None

    level = serving.closed_loop(flaky, 2, 0.2)
    assert level["failures"] > 0
    assert level["requests"] > 0
    assert set(level["failure_examples"]) == {"ConnectionError: refused", "HTTP 503: busy"}


def test_training_benchmark_measures_loader_step_and_fit(small_root: Path, tmp_path: Path) -> None:
    args = ["--configs", "demo-mlp.yaml", "--batch-size", "4", "--steps", "2", "--data-root", str(small_root)]
    result = training.main([*args, "--out", str(tmp_path)])
    assert [(r["phase"], r["mode"]) for r in result["rows"]] == [
        ("all weights", "loader"), ("all weights", "step"), ("all weights", "fit")
    ]  # fmt: skip
    assert all(r["images_per_s"] > 0 and r["batch_size"] == 4 for r in result["rows"])
    assert "| demo-mlp.yaml |" in (tmp_path / "training.md").read_text()
