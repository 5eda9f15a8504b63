"""Inference speed on this machine: PyTorch eager, onnxruntime fp32 and int8, per model and batch.

    python -m bench.inference --models vit_base_patch16_224 mlp --batches 1 8 --out bench/results

Each row is printed beside its physical floor, measured in the same run: for the ViT its FLOPs
over the machine's measured fp32 matmul rate; for the MLP at batch 1, its weight bytes over the
measured memory bandwidth. Latency does not depend on the weights' values, so the models are
built with random weights (no download). Writes ``inference.json`` and ``inference.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from training import onnx_export as ox
from training.networks import MlpClassifier, TimmClassifier, count_parameters


def timed(fn, *, repeats: int, warmup: int = 2) -> list[float]:  # noqa: ANN001
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def matmul_gflops(size: int = 3072, repeats: int = 8) -> float:
    """Best fp32 rate of a large multithreaded matmul: the ceiling a ViT's GEMMs work against."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = min(timed(lambda: a @ b, repeats=repeats))
    return 2 * size**3 / best / 1e9


def memory_gbps(megabytes: int = 1024, repeats: int = 8) -> float:
    """Read bandwidth over a buffer far larger than the caches, on all threads: the faster of a sum
    and an fp32 matrix-vector product (the MLP at batch 1 reads every weight once per image)."""
    rows = megabytes * 1024 * 1024 // 4 // 4096
    matrix, vector = torch.randn(rows, 4096), torch.randn(4096)
    best = min(min(timed(matrix.sum, repeats=repeats)), min(timed(lambda: torch.mv(matrix, vector), repeats=repeats)))
    return matrix.numel() * 4 / best / 1e9


def build(name: str) -> torch.nn.Module:
    if name == "mlp":
        return MlpClassifier().eval()
    if name == "mlp-small":
        return MlpClassifier(hidden_sizes=(64, 32)).eval()
    return TimmClassifier(name, pretrained=False).eval()


def vit_flops(name: str) -> float:
    """Forward FLOPs per image (2 x multiply-adds), counted by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    net = build(name)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.randn(1, 3, 224, 224))
    return float(counter.get_total_flops())


def runner(net: torch.nn.Module, session: ort.InferenceSession | None, images: np.ndarray):  # noqa: ANN201
    """One forward pass of the batch in PyTorch eager (no session) or onnxruntime."""
    if session is not None:
        return lambda: session.run(None, {"image": images})
    tensor = torch.from_numpy(images)

    def run() -> Any:  # noqa: ANN401
        with torch.no_grad():
            return net(tensor)

    return run


def bench_model(name: str, batches: list[int], repeats: int, ceilings: dict[str, float], work: Path) -> list[dict]:
    net = build(name)
    fp32 = ox.export_onnx(net, work / name / "model.onnx", 224)
    int8 = ox.quantize_int8(fp32, work / name / "model.int8.onnx")
    is_mlp = name.startswith("mlp")
    floor_s = (
        count_parameters(net) * 4 / (ceilings["memory_gbps"] * 1e9)
        if is_mlp
        else vit_flops(name) / (ceilings["matmul_gflops"] * 1e9)
    )
    rows = []
    for runtime in ("pytorch", "onnx-fp32", "onnx-int8"):
        path = {"onnx-fp32": fp32, "onnx-int8": int8}.get(runtime)
        started = time.perf_counter()
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]) if path else None
        load_s = time.perf_counter() - started if path else float("nan")
        for batch in batches:
            images = np.random.default_rng(0).normal(size=(batch, 3, 224, 224)).astype(np.float32)
            run = runner(net, session, images)
            samples = timed(run, repeats=repeats)
            per_image = [s / batch for s in samples]
            floor = floor_s if not is_mlp or batch == 1 else float("nan")
            rows.append({
                "model": name, "runtime": runtime, "batch": batch,
                "median_ms_per_image": statistics.median(per_image) * 1000,
                "p95_ms_per_image": float(np.percentile(per_image, 95)) * 1000,
                "images_per_s": batch / statistics.median(samples),
                "size_mb": (path.stat().st_size if path else count_parameters(net) * 4) / 1e6,
                "load_s": load_s,
                "floor_ms_per_image": floor * 1000,
                "floor": "weights / bandwidth" if is_mlp else "FLOPs / matmul rate",
            })  # fmt: skip
    return rows


def markdown(result: dict) -> str:
    c = result["ceilings"]
    lines = [
        f"Measured on {result['machine']} ({result['cpus']} CPUs), {result['date']}: "
        f"fp32 matmul {c['matmul_gflops']:.0f} GFLOP/s, memory read {c['memory_gbps']:.1f} GB/s.",
        "",
        "| model | runtime | batch | median ms/img | p95 ms/img | img/s | floor ms/img | size MB | load s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['model']} | {r['runtime']} | {r['batch']} | {r['median_ms_per_image']:.1f} | "
            f"{r['p95_ms_per_image']:.1f} | {r['images_per_s']:.1f} | {r['floor_ms_per_image']:.1f} | "
            f"{r['size_mb']:.0f} | {r['load_s']:.2f} |"
        )
    return "\n".join(lines).replace("| nan |", "| - |") + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vit_base_patch16_224", "mlp"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    ceilings = {"matmul_gflops": matmul_gflops(), "memory_gbps": memory_gbps()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows += bench_model(name, args.batches, args.repeats, ceilings, Path(tmp))
    result = {
        "machine": platform.processor() or platform.machine(),
        "cpus": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
        "ceilings": ceilings,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "inference.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "inference.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
