"""Inference speed on this machine: PyTorch eager (fp32, bf16 autocast), onnxruntime and OpenVINO
(fp32, the static int8 file, and fp32 with OpenVINO's bf16 hint), per model and batch.

    python -m bench.inference --models vit_base_patch16_224 mlp --batches 1 8

Each row is printed beside its physical floor, from the hardware's own peaks (``bench/peaks.c``,
built here: the widest FMA, int8 dot-product and bf16 instructions the CPU has, AMX's tiles
where it has them, on every thread, and a read of a buffer far larger than the caches): for the
ViT its FLOPs over the fp32 peak, or over the int8 peak for the int8 file; for the MLP at batch 1,
its weight bytes over the read rate. The libraries' own matmul and read rates (PyTorch fp32 and
bf16, onnxruntime's MLAS) are measured too, to show how far each library is from the hardware; a
peak a library beats is said to be no floor. A model's runtimes and its floors' kernels are timed
in turn, call by call: this VM drifts by tens of percent within minutes, so rows
compared with each other or with their floor are measured in the same minutes. Each row also
says how far its probabilities are from onnxruntime fp32's, and in which precision it really ran
(OpenVINO's bf16 hint runs f32 on a CPU without bf16 instructions). Every timed call
starts after a short settle, so no runtime's spinning threads slow the next one.
Writes ``inference.json`` and ``inference.md``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from bench.common import (
    BANDWIDTH_FLOOR,
    RUNTIMES,
    add_output_arguments,
    at_least,
    beaten_peaks,
    build_network,
    describe,
    dynamic_int8_store,
    floor_kind,
    flops_floor,
    is_served,
    markdown_table,
    model_store,
    publish,
    timed,
)
from bench.peaks import Peak, peaks, rates
from inference.cores import available_cpus
from inference.predictor import FILES
from inference.runtimes import (
    GROUPED,
    OpenVinoGraph,
    allowance,
    dequantize_activations,
    label,
    open_graph,
    openvino_core,
    openvino_installed,
)
from training.networks import count_parameters

PEER, TODAY = "openvino-", "onnx-int8-dynamic"  # the goals: ours against OpenVINO's best, and today's file
# what serving's auto runs the int8 file in, by its runtimes.label; the grouped row is ours, not OpenVINO's own
GROUPED_ROW = "openvino-int8-grouped"
SERVED_ROWS = {"onnxruntime": "onnx-int8", "openvino": "openvino-int8", f"openvino {GROUPED}": GROUPED_ROW}
BATCH1_GOAL = 1.05  # the served file at batch 1: at most this many times today's dynamic int8
UNITS = {"fp32_gflops": "GFLOP/s", "bf16_gflops": "GFLOP/s", "int8_gops": "GOP/s", "read_gbps": "GB/s"}


def _ort_matmul(m: int, k: int, n: int) -> Callable[[], object]:
    """One onnxruntime MatMul of ``[m, k] x [k, n]`` with the weight as an initializer, as in the models."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((m, k), dtype=np.float32)
    return lambda: session.run(None, {"x": x})


@dataclass(frozen=True)
class Probe:
    """One ceiling measurement: a call, and the work it does (FLOPs, or bytes read)."""

    call: Callable[[], object]
    work: float

    def rate(self, repeats: int) -> float:
        """Work per second of the fastest of ``repeats`` calls."""
        return self.work / min(timed(self.call, repeats=repeats))


def matmul_probes() -> dict[str, Probe]:
    """fp32 matmuls large enough to use every core: a square one in PyTorch, and in onnxruntime a
    square one and one of a ViT-B MLP layer at batch 8 (1576 tokens x 768 -> 3072)."""
    size = 3072
    a, b = torch.randn(size, size), torch.randn(size, size)
    probes = {"torch 3072^3": Probe(lambda: a @ b, 2.0 * size**3)}
    for name, (m, k, n) in {
        "onnxruntime 3072^3": (size, size, size),
        "onnxruntime 1576x768x3072": (1576, 768, 3072),
    }.items():
        probes[name] = Probe(_ort_matmul(m, k, n), 2.0 * m * k * n)
    return probes


def bf16_probes() -> dict[str, Probe]:
    """A bf16 matmul in PyTorch (oneDNN's, on AMX where the CPU has it): beside the bf16 peak, as OpenVINO's
    bf16 runs the ViT's matmuls."""
    size = 3072
    a, b = torch.randn(size, size, dtype=torch.bfloat16), torch.randn(size, size, dtype=torch.bfloat16)
    return {"torch bf16 3072^3": Probe(lambda: a @ b, 2.0 * size**3)}


def read_probes(megabytes: int = 1024) -> dict[str, Probe]:
    """Reads of a buffer far larger than the caches, on all threads: a sum and a matrix-vector
    product in PyTorch, and a vector-matrix MatMul in onnxruntime (the MLP at batch 1 reads every
    weight once per image, this way)."""
    columns = 4096
    rows = megabytes * 1024 * 1024 // 4 // columns
    matrix, vector = torch.randn(rows, columns), torch.randn(columns)
    nbytes = float(matrix.numel() * 4)
    return {
        "torch sum": Probe(matrix.sum, nbytes),
        "torch gemv": Probe(lambda: torch.mv(matrix, vector), nbytes),
        "onnxruntime 1 x K x N": Probe(_ort_matmul(1, rows, columns), nbytes),
    }


def library_rates(probes: dict[str, Probe], repeats: int = 8) -> dict[str, float]:
    """Each library probe's rate (giga-work per second: GFLOP/s, GB/s), to read beside the hardware's peak."""
    return {label: probe.rate(repeats) / 1e9 for label, probe in probes.items()}


SETTLE_S = 0.1  # between timed calls: onnxruntime's and OpenMP's idle threads spin for a while, and
# a probe run in another thread pool meanwhile ran at half its rate


def paced(calls: list[Callable[[], object]], repeats: int) -> list[list[float]]:
    """Seconds of each call, timed in turn ``repeats`` times, a settle before each: every runtime of
    a model and its floor's probe meet the same minutes of this VM, which drifts by tens of percent
    within minutes (timed one after another, a ratio of two rows mostly measured the drift)."""
    for call in calls * 2:  # warm-ups
        call()
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for call, seconds in zip(calls, samples, strict=True):
            time.sleep(SETTLE_S)
            seconds += timed(call, repeats=1, warmup=0)
    return samples


def vit_flops(net: torch.nn.Module) -> float:
    """Forward FLOPs per image (2 x multiply-adds), counted by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.randn(1, 3, 224, 224))
    return float(counter.get_total_flops())


def runner(net: torch.nn.Module, runtime: str, path: Path | None) -> Callable[[np.ndarray], np.ndarray]:
    """``images -> P(SSA)`` in one runtime: PyTorch eager (fp32 or bf16 autocast), onnxruntime or
    OpenVINO (its precision hint from the runtime's name) on the file."""
    if path is None:
        autocast = runtime == "pytorch-bf16"

        def run(images: np.ndarray) -> np.ndarray:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                return torch.sigmoid(net(torch.from_numpy(images)).float()).numpy()

        return run
    if runtime.startswith("onnx-"):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda images: session.run(["probability"], {"image": images})[0]
    if runtime == GROUPED_ROW:
        graph = grouped_graph(path)
        return lambda images: graph.run(["probability"], images)[0]
    compiled = openvino_core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": openvino_hint(runtime)})
    return lambda images: np.array(compiled({"image": images})[compiled.output("probability")])


def grouped_graph(path: Path) -> OpenVinoGraph:
    """The int8 file as serving's auto runs it ``int8-grouped`` (an MLP's; None for a ViT's is never asked)."""
    graph = OpenVinoGraph.open_grouped(path, available_cpus())
    assert graph is not None, path  # load_runtimes asks only where grouped_applies
    return graph


def grouped_applies(path: Path) -> bool:
    return dequantize_activations(openvino_core().read_model(str(path))) > 0


def openvino_hint(runtime: str) -> str:
    """The ``INFERENCE_PRECISION_HINT`` an OpenVINO row compiles with: bf16 for its bf16 row, f32 otherwise."""
    return "bf16" if runtime.endswith("bf16") else "f32"


def openvino_precision(runtime: str, path: Path) -> str:
    """The precision OpenVINO's CPU plugin really runs with the runtime's hint (f32 where the CPU has no bf16)."""
    compiled = openvino_core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": openvino_hint(runtime)})
    return compiled.get_property("INFERENCE_PRECISION_HINT").to_string()


INTEGER_MATMULS = ("DynamicQuantizeMatMul", "MatMulInteger", "MatMulIntegerToFloat", "QLinearMatMul", "QGemm")
MATMULS = ("MatMul", "FusedMatMul", "Gemm", "FusedGemm", *INTEGER_MATMULS)


def _matmul_flops(args: dict) -> float:
    """2 x output elements x K, K being the first input's last axis (untransposed, as in both models)."""
    (output,) = args["output_type_shape"][0].values()
    (first,) = args["input_type_shape"][0].values()
    return 2.0 * math.prod(output) * first[-1]


def _weight_shape(args: dict) -> tuple[int, int, int] | None:
    """``(M, K, N)`` of a matmul by a weight, None for one of two activations (attention's 4-D ones).
    The profile leaves a prepacked weight out of the inputs, or shows its shape as ``[]``."""
    (output,) = args["output_type_shape"][0].values()
    first, *rest = (next(iter(shape.values())) for shape in args["input_type_shape"])
    second = rest[0] if rest else []
    return (math.prod(output[:-1]), first[-1], output[-1]) if len(second) <= 2 else None


def alone_gflops(shapes: dict[tuple[int, int, int], int], repeats: int = 10, passes: int = 3) -> float:
    """The rate of the same weight matmuls (shape: count) each run alone as a one-node onnxruntime
    model, each at its fastest over ``passes`` rounds of ``repeats`` (rounds, as this VM drifts):
    what the machine does at the model's own shapes."""
    calls = {shape: _ort_matmul(*shape) for shape in shapes}
    fastest = dict.fromkeys(shapes, float("inf"))
    for _ in range(passes):
        for shape, call in calls.items():
            time.sleep(SETTLE_S)  # the last session's threads stop spinning
            fastest[shape] = min(fastest[shape], *timed(call, repeats=repeats, warmup=2))
    flops = sum(count * 2.0 * math.prod(shape) for shape, count in shapes.items())
    seconds = sum(count * fastest[shape] for shape, count in shapes.items())
    return flops / seconds / 1e9 if seconds else float("nan")


def op_breakdown(path: Path, images: np.ndarray, runs: int = 5) -> dict:
    """Where one onnxruntime run spends its time, from the session's own profile (a separate
    session: profiling slows the timed one): kernel ms per image by operator, the matmuls' share,
    the rate the fp32 and integer matmuls reach inside the model (to set beside the probe), and the
    weight matmuls' rate in the model beside the same shapes run alone (is the model or the shape slow?)."""
    options = ort.SessionOptions()
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as folder:
        options.profile_file_prefix = str(Path(folder) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(1 + runs):  # the first is a warm-up, dropped below
            session.run(None, {"image": images})
        events = json.loads(Path(session.end_profiling()).read_text())
    del session  # before the matmuls run alone: the MLP's weights are gigabytes
    warm_up = next(e for e in events if e.get("name") == "model_run")
    warmed = warm_up["ts"] + warm_up["dur"]
    per_op: dict[str, float] = {}
    work = {"fp32": [0.0, 0.0], "integer": [0.0, 0.0], "weight": [0.0, 0.0]}  # FLOPs, seconds
    weight_shapes: dict[tuple[int, int, int], int] = {}
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time") or event["ts"] < warmed:
            continue
        op, seconds = event["args"]["op_name"], event["dur"] / 1e6
        per_op[op] = per_op.get(op, 0.0) + seconds
        if op in MATMULS:
            flops, integer = _matmul_flops(event["args"]), op in INTEGER_MATMULS
            shape = None if integer else _weight_shape(event["args"])
            for kind in ["integer" if integer else "fp32"] + (["weight"] if shape else []):
                work[kind][0] += flops
                work[kind][1] += seconds
            if shape:
                weight_shapes[shape] = weight_shapes.get(shape, 0) + 1
    scale = 1000 / runs / len(images)
    kernel = sum(per_op.values())
    return {
        "kernel_ms_per_image": kernel * scale,
        "ops_ms_per_image": {op: t * scale for op, t in sorted(per_op.items(), key=lambda item: -item[1])},
        "matmul_share": sum(t for op, t in per_op.items() if op in MATMULS) / kernel if kernel else 0.0,
        **{
            f"{kind}_matmul_gflops": flops / seconds / 1e9 if seconds else float("nan")
            for kind, (flops, seconds) in work.items()
        },
        "weight_matmul_alone_gflops": alone_gflops(weight_shapes),
    }


OPENVINO_MATRIX_NODES = ("FullyConnected", "MatMul", "Convolution")  # nearly all a ViT's FLOPs are theirs


def openvino_breakdown(path: Path, images: np.ndarray, hint: str, flops: float, runs: int = 5) -> dict:
    """Where one OpenVINO run spends its time, from its own per-node counters (``PERF_COUNT``, in a
    separate compiled model: counting slows the timed one): ms per image by node type, the matrix
    nodes' share and the rate they reach (the model's ``flops`` per image over their time), and the
    kernels they ran (``brgemm_avx512_amx_I8``: AMX's int8 tiles)."""
    config = {"INFERENCE_PRECISION_HINT": hint, "PERF_COUNT": True}
    request = openvino_core().compile_model(str(path), "CPU", config).create_infer_request()
    request.infer({"image": images})  # a warm-up: it compiles for this shape
    per_node: dict[str, float] = {}
    kernels: dict[str, int] = {}
    for _ in range(runs):
        request.infer({"image": images})
        for info in request.profiling_info:
            seconds = info.real_time.total_seconds()
            per_node[info.node_type] = per_node.get(info.node_type, 0.0) + seconds
            if info.node_type in OPENVINO_MATRIX_NODES and seconds > 0:
                kernels[info.exec_type] = kernels.get(info.exec_type, 0) + 1
    total = sum(per_node.values())
    matrix = sum(per_node.get(node, 0.0) for node in OPENVINO_MATRIX_NODES)
    scale = 1000 / runs / len(images)
    return {
        "kernel_ms_per_image": total * scale,
        "ops_ms_per_image": {node: t * scale for node, t in sorted(per_node.items(), key=lambda item: -item[1])},
        "matrix_share": matrix / total if total else 0.0,
        "matrix_gops": flops * len(images) * runs / matrix / 1e9 if matrix else math.nan,
        "matrix_kernels": sorted(kernels, key=lambda kernel: -kernels[kernel]),
    }


def profiles(runtime: str, one: Loaded, images: np.ndarray, flops: float) -> dict:
    """The row's profile by its runtime's own counters: onnxruntime's for every ONNX row, OpenVINO's
    for the ViT's (the MLP at batch 1 is a read of its weights, which a node profile cannot split)."""
    if runtime.startswith("onnx"):
        return {"profile": op_breakdown(one.path, images)}
    if runtime.startswith("openvino") and flops:
        return {"openvino_profile": openvino_breakdown(one.path, images, openvino_hint(runtime), flops)}
    return {}


PEAK_CHILD = """
import sys
import numpy as np
name, runtime, batch, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
images = np.zeros((batch, 3, 224, 224), np.float32)
if runtime.startswith("pytorch"):  # torch only where it is the runtime: an ONNX process never imports it
    import torch
    from bench.common import build_network
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=runtime.endswith("bf16")):
        build_network(name)(torch.from_numpy(images))
elif runtime == "openvino-int8-grouped":
    from pathlib import Path
    from bench.inference import grouped_graph
    grouped_graph(Path(path)).run(["probability"], images)
elif runtime.startswith("openvino"):
    from inference.runtimes import openvino_core
    hint = {"INFERENCE_PRECISION_HINT": "bf16" if runtime.endswith("bf16") else "f32"}
    openvino_core().compile_model(path, "CPU", hint)({"image": images})
else:
    import onnxruntime as ort
    ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"image": images})
from bench.common import peak_rss_mb
print(peak_rss_mb())
"""


def peak_memory_mb(name: str, runtime: str, batch: int, path: Path | None) -> float:
    """Peak resident memory of a fresh process that loads one runtime and runs one batch: what a
    serving process of that kind needs (imports included), untouched by this process's probes."""
    command = [sys.executable, "-c", PEAK_CHILD, name, runtime, str(batch), str(path or "")]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=Path(__file__).parent.parent)
    if done.returncode != 0:
        raise RuntimeError(f"measuring the memory of {name} {runtime} failed: {done.stderr[-500:]}")
    return float(done.stdout.strip().splitlines()[-1])


def floor_work(is_mlp: bool, runtime: str, batch: int, weight_bytes: float, flops: float) -> tuple[str, float] | None:
    """What bounds a batch from below, and how much of it: an MLP at batch 1 reads its weight bytes
    (int8 ones for int8); a ViT does its FLOPs at the peak of its precision. None for a batched MLP
    (the batch shares the weight reads)."""
    if is_mlp:
        return ("read_gbps", weight_bytes) if batch == 1 else None
    precision = "int8" if "int8" in runtime else "bf16" if runtime.endswith("bf16") else "fp32"
    return ({"int8": "int8_gops", "bf16": "bf16_gflops"}.get(precision, "fp32_gflops"), flops * batch)


def weight_bytes_held(runtime: str, one: Loaded) -> float:
    """The bytes of weights a run reads: OpenVINO compiles the fp32 file's weights into bf16 under its
    bf16 hint (half the file); PyTorch's autocast keeps fp32 weights and casts them on every call."""
    return one.size / 2 if runtime.startswith("openvino") and one.precision == "bf16" else one.size


def floor_fields(
    samples: list[float],
    batch: int,
    bound: tuple[str, float] | None,
    floors: dict[str, Peak],
    probe_samples: dict[str, list[float]],
) -> dict[str, float]:
    """A row against its floor, the probe timed in turn with it: ``vs_floor`` median over median,
    ``best_vs_floor`` fastest over fastest."""
    if bound is None:
        return dict.fromkeys(("floor_ms_per_image", "vs_floor", "best_vs_floor", "floor_probe_rate"), float("nan"))
    kind, work = bound
    probe, probe_seconds = floors[kind], probe_samples[kind]
    scale = work / probe.work
    floor_s = statistics.median(probe_seconds) * scale
    return {
        "floor_ms_per_image": floor_s / batch * 1000,
        "vs_floor": statistics.median(samples) / floor_s,
        "best_vs_floor": min(samples) / (min(probe_seconds) * scale),
        "floor_probe_rate": probe.work / statistics.median(probe_seconds) / 1e9,
    }


def difference(one: Loaded, images: np.ndarray, reference: np.ndarray) -> float:
    """The largest probability difference from onnxruntime fp32 on the same file's weights; NaN for
    PyTorch, whose network has random weights of its own (latency does not depend on them)."""
    return float(np.max(np.abs(one.run(images) - reference))) if one.path else float("nan")


def floor_name(is_mlp: bool, bound: tuple[str, float] | None) -> str:
    if is_mlp:
        return BANDWIDTH_FLOOR
    return flops_floor(bound[0]) if bound else "none: this CPU has no instruction for it"


@dataclass
class Loaded:
    """One runtime of a model, ready to time."""

    path: Path | None
    run: Callable[[np.ndarray], np.ndarray]
    load_s: float
    size: float
    peak_mb: float
    precision: str  # what it really computes in


def model_file(store: Path, name: str, runtime: str) -> Path | None:
    """The file a runtime reads (None for PyTorch): the int8 file for int8 (today's from its own
    store), the fp32 one otherwise."""
    if runtime.startswith("pytorch"):
        return None
    if runtime == TODAY:
        return dynamic_int8_store([name], store) / name / FILES["int8"]
    return store / name / FILES["int8" if "int8" in runtime else "fp32"]


def load_runtimes(name: str, net: torch.nn.Module, store: Path, batch: int) -> dict[str, Loaded]:
    loaded = {}
    for runtime in RUNTIMES:
        if runtime.startswith("openvino") and not openvino_installed():
            continue
        path = model_file(store, name, runtime)
        if runtime == GROUPED_ROW and not grouped_applies(path):
            continue  # a ViT's file: serving never runs it so
        peak_mb = peak_memory_mb(name, runtime, batch, path)
        started = time.perf_counter()
        run = runner(net, runtime, path)
        load_s = time.perf_counter() - started if path else float("nan")
        size = path.stat().st_size if path else count_parameters(net) * 4
        precision = "int8" if "int8" in runtime else "bf16" if runtime.endswith("bf16") else "fp32"
        if runtime in ("openvino-fp32", "openvino-bf16"):  # the int8 file's int8 layers run int8 whatever the hint
            precision = openvino_precision(runtime, path)
        loaded[runtime] = Loaded(path, run, load_s, size, peak_mb, precision)
    return loaded


def served_runtime(store: Path, name: str) -> str:
    """The row the EC2 service serves here: the runtime serving's own ``MODEL_RUNTIME=auto`` picks for
    the int8 file on this machine (its measurement, not ours), onnxruntime without OpenVINO."""
    return SERVED_ROWS[label(open_graph(store / name / FILES["int8"], "auto", available_cpus()))]


def bench_model(
    name: str, batches: list[int], repeats: int, floors: dict[str, Peak], store: Path, *, profile: bool = True
) -> list[dict]:
    """Every runtime of one model, timed in turn at each batch size with its floor's kernel."""
    net = build_network(name)
    is_mlp = name.startswith("mlp")
    flops = 0.0 if is_mlp else vit_flops(net)
    loaded = load_runtimes(name, net, store, max(batches))
    served = served_runtime(store, name)
    rows = []
    for batch in batches:
        images = np.random.default_rng(0).normal(size=(batch, 3, 224, 224)).astype(np.float32)
        bounds = {rt: floor_work(is_mlp, rt, batch, weight_bytes_held(rt, one), flops) for rt, one in loaded.items()}
        bounds = {rt: bound if bound and bound[0] in floors else None for rt, bound in bounds.items()}  # no bf16 here
        kinds = sorted({bound[0] for bound in bounds.values() if bound})
        reference = loaded["onnx-fp32"].run(images)
        calls = [functools.partial(one.run, images) for one in loaded.values()] + [floors[k].call for k in kinds]
        timings = paced(calls, repeats)
        probe_samples = dict(zip(kinds, timings[len(loaded) :], strict=True))
        for (runtime, one), samples in zip(loaded.items(), timings[: len(loaded)], strict=True):
            per_image = [s / batch for s in samples]
            rows.append(
                {
                    "model": name,
                    "runtime": runtime,
                    "batch": batch,
                    "median_ms_per_image": statistics.median(per_image) * 1000,
                    "p95_ms_per_image": float(np.percentile(per_image, 95)) * 1000,
                    "images_per_s": batch / statistics.median(samples),
                    "size_mb": one.size / 1e6,
                    "load_s": one.load_s,
                    "peak_mb": one.peak_mb,
                    "precision": one.precision,
                    "served": runtime == served,
                    "max_abs_diff_vs_fp32": difference(one, images, reference),
                    **floor_fields(samples, batch, bounds[runtime], floors, probe_samples),
                    "floor": floor_name(is_mlp, bounds[runtime]),
                    **(profiles(runtime, one, images, flops) if profile else {}),
                }
            )
    return sorted(rows, key=lambda r: (RUNTIMES.index(r["runtime"]), batches.index(r["batch"])))


def markdown(result: dict) -> str:
    c, isa, probes = result["ceilings"], result["peaks"], result["probes"]
    peaks = ", ".join(f"{kind.rsplit('_', 1)[0]} {c[kind]:.0f} {UNITS[kind]} ({isa[kind]})" for kind in c)
    libraries = ", ".join(f"{label} {rate:.0f}" for kind in probes for label, rate in probes[kind].items())
    header = (
        f"Measured on {describe(result['machine'])}, {result['machine']['date']}. The hardware's peaks: {peaks}. "
        f"The libraries' own rates (GFLOP/s, GB/s): {libraries}.\n\n"
    )
    rows = [
        (
            r["model"],
            r["runtime"],
            r["precision"],
            r["batch"],
            r["median_ms_per_image"],
            r["p95_ms_per_image"],
            r["images_per_s"],
            r["floor_ms_per_image"],
            r["vs_floor"],
            r["best_vs_floor"],
            r["max_abs_diff_vs_fp32"],
            r["size_mb"],
            r["load_s"],
            r["peak_mb"],
        )
        for r in result["rows"]
    ]
    headers = (
        "model",
        "runtime",
        "ran as",
        "batch",
        "median ms/img",
        "p95 ms/img",
        "img/s",
        "floor ms/img",
        "x floor",
        "best x floor",
        "max dP vs fp32",
        "size MB",
        "load s",
        "peak MB",
    )
    note = (
        "\n`floor`: the row's FLOPs (ViT, at the fp32 or int8 peak) or weight bytes (MLP, batch 1, at the read rate) "
        "at the hardware's peak, its kernel timed in turn with the model's runtimes so that the machine's drift moves "
        "all alike; "
        "`x floor` is median over median, `best x floor` fastest over fastest. `peak MB`: peak resident memory "
        "of a fresh process that loads that runtime and runs the largest batch, imports included.\n"
    )
    table = markdown_table(headers, rows, digits=2)
    beaten = "".join(
        f"\n**Not a floor here**: {what}; the peak kernel is not this CPU's best, so no floor goal is judged at it.\n"
        for what in beaten_peaks(result).values()
    )
    peer = against_peer(result["rows"])
    return header + table + note + beaten + peer + profile_markdown(result) + openvino_profile_markdown(result)


def agrees(row: dict, served: dict) -> bool:
    """Whether a row is as close to fp32 as serving's ``auto`` requires of a runtime serving the served
    file: within its allowance of that file's distance."""
    return row["max_abs_diff_vs_fp32"] <= allowance(served["max_abs_diff_vs_fp32"])


def against_peer(rows: list[dict]) -> str:
    """For each model and batch: the served row against OpenVINO's fastest other agreeing row, and at
    batch 1 against today's dynamic int8 file."""
    lines = []
    for model, batch in dict.fromkeys((r["model"], r["batch"]) for r in rows):
        same = {r["runtime"]: r for r in rows if (r["model"], r["batch"]) == (model, batch)}
        mine = next((r for r in same.values() if is_served(r)), None)
        if mine is None:
            continue
        served = mine["runtime"]
        peers = [
            r for rt, r in same.items() if rt.startswith(PEER) and rt not in (served, GROUPED_ROW) and agrees(r, mine)
        ]
        if peers:
            best = min(peers, key=lambda r: r["median_ms_per_image"])
            ratio = mine["median_ms_per_image"] / best["median_ms_per_image"]
            lines.append(
                f"- {model} batch {batch}: served, {served}, {mine['median_ms_per_image']:.1f} ms/img; OpenVINO's "
                f"best other agreeing, {best['runtime']}, {best['median_ms_per_image']:.1f}: ours at {ratio:.2f}x "
                f"({'faster' if ratio < 1 else 'slower'})"
            )
        bf16 = same.get("openvino-bf16")
        if bf16 is not None and bf16["precision"] == "bf16":  # MODEL_VARIANT=bf16: worth it where it is near 1x
            ratio = bf16["median_ms_per_image"] / mine["median_ms_per_image"]
            lines.append(
                f"- {model} batch {batch}: bf16 (MODEL_VARIANT=bf16) at {ratio:.2f}x the served row's time, "
                f"max dP vs fp32 {bf16['max_abs_diff_vs_fp32']:.4f} against {mine['max_abs_diff_vs_fp32']:.4f}"
            )
        if batch == 1 and TODAY in same:
            ratio = mine["median_ms_per_image"] / same[TODAY]["median_ms_per_image"]
            verdict = f"goal <= {BATCH1_GOAL}: {'met' if ratio <= BATCH1_GOAL else 'MISSED'}"
            lines.append(f"- {model} batch 1: served, {served}, at {ratio:.2f}x today's {TODAY} ({verdict})")
    return "\nAgainst OpenVINO and today's file in the same run:\n" + "\n".join(lines) + "\n" if lines else ""


def profile_markdown(result: dict) -> str:
    """The onnxruntime rows' profiles: how much is matmul, and how fast the matmuls run in the model."""
    profiled = [r for r in result["rows"] if "profile" in r]
    if not profiled:
        return ""
    probe = result["ceilings"]["fp32_gflops"]
    rows = []
    for r in profiled:
        p = r["profile"]
        others = [(op, ms) for op, ms in p["ops_ms_per_image"].items() if op not in MATMULS][:3]
        rows.append(
            (
                r["model"],
                r["runtime"],
                r["batch"],
                p["kernel_ms_per_image"],
                f"{p['matmul_share']:.0%}",
                p["fp32_matmul_gflops"],
                p["fp32_matmul_gflops"] / probe,
                p["weight_matmul_gflops"],
                p["weight_matmul_alone_gflops"],
                p["integer_matmul_gflops"],
                ", ".join(f"{op} {ms:.1f}" for op, ms in others),
            )
        )
    headers = (
        "model",
        "runtime",
        "batch",
        "kernel ms/img",
        "matmul share",
        "fp32 matmul GFLOP/s",
        "of peak",
        "weight matmuls GFLOP/s",
        "same shapes alone",
        "int8 matmul GOP/s",
        "next ops (ms/img)",
    )
    return (
        "\nWhere the time goes (onnxruntime's profile of the same file in a separate session, kernel time only, "
        "so its ms need not match the timed median): the matmuls' share and the rate they reach inside the model, "
        f"beside the fp32 peak's {probe:.0f} GFLOP/s; then the fp32 matmuls by a weight (attention's excluded) in the "
        "model, and the same shapes each run alone.\n\n" + markdown_table(headers, rows, digits=2)
    )


def openvino_profile_markdown(result: dict) -> str:
    """The OpenVINO rows' counters: how much is matrix work, how fast it runs beside its precision's peak."""
    profiled = [r for r in result["rows"] if "openvino_profile" in r]
    if not profiled:
        return ""
    rows = []
    for r in profiled:
        p, kind = r["openvino_profile"], floor_kind(r)
        peak = result["ceilings"].get(kind, math.nan) if kind else math.nan
        others = [(node, ms) for node, ms in p["ops_ms_per_image"].items() if node not in OPENVINO_MATRIX_NODES][:3]
        rows.append(
            (
                r["model"],
                r["runtime"],
                r["batch"],
                p["kernel_ms_per_image"],
                f"{p['matrix_share']:.0%}",
                p["matrix_gops"],
                p["matrix_gops"] / peak,
                ", ".join(p["matrix_kernels"][:2]),
                ", ".join(f"{node} {ms:.1f}" for node, ms in others),
            )
        )
    headers = ("model", "runtime", "batch", "profiled ms/img", "matrix share", "matrix G/s", "of peak", "kernels")
    return (
        "\nOpenVINO's own counters (`PERF_COUNT`, a separate compiled model): the share of the matrix nodes "
        f"({', '.join(OPENVINO_MATRIX_NODES)}), the model's FLOPs over their time beside the peak of the row's "
        "floor, and the kernels they ran.\n\n" + markdown_table((*headers, "next nodes (ms/img)"), rows, digits=2)
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vit_base_patch16_224", "mlp"])
    parser.add_argument("--batches", nargs="+", type=at_least(1), default=[1, 8])
    parser.add_argument("--repeats", type=at_least(1), default=20)
    parser.add_argument(
        "--probe-mb", type=at_least(1), default=1024, help="bandwidth buffer size (far above the caches)"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the per-operator onnxruntime profile")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    store = model_store(args.models, args.store)  # first: a bad name fails before minutes of probing
    floors = peaks(args.probe_mb)  # a missing compiler is said before minutes of timing
    measured = rates(floors)
    ceilings = {kind: m["rate"] for kind, m in measured.items()}
    probes = {
        "matmul_gflops": library_rates(matmul_probes()),
        "bf16_matmul_gflops": library_rates(bf16_probes()),
        "memory_gbps": library_rates(read_probes(args.probe_mb)),
    }
    rows = []
    for name in args.models:
        rows += bench_model(name, args.batches, args.repeats, floors, store, profile=not args.no_profile)
    result = {"ceilings": ceilings, "peaks": {k: m["isa"] for k, m in measured.items()}, "probes": probes, "rows": rows}
    return publish(args.out, "inference", result, markdown)


if __name__ == "__main__":
    main()
