"""Benchmarks are never part of the test run; this proves each one works at a tiny size."""

import json
from pathlib import Path

from bench.inference import main


def test_inference_benchmark_runs_and_writes_its_table(tmp_path: Path) -> None:
    result = main(["--models", "mlp-small", "--batches", "1", "2", "--repeats", "2", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "inference.json").read_text())["rows"]
    runtimes = ("pytorch", "onnx-fp32", "onnx-int8")
    assert [(r["runtime"], r["batch"]) for r in rows] == [(rt, b) for rt in runtimes for b in (1, 2)]
    assert all(r["median_ms_per_image"] > 0 and r["images_per_s"] > 0 for r in rows)
    assert result["ceilings"]["matmul_gflops"] > 0
    assert result["ceilings"]["memory_gbps"] > 0
    table = (tmp_path / "inference.md").read_text()
    assert "| mlp-small | onnx-int8 | 1 |" in table
    assert "floor ms/img" in table
