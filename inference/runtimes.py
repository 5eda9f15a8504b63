"""The runtimes that run the ONNX file, behind one call: onnxruntime (always installed, the fallback)
and OpenVINO (the EC2 image has it; the Lambda image does not, for its size and cold start).

``auto`` measures both on the file as it loads and keeps the faster, provided the two agree on a
probe batch: which runtime wins depends on the CPU (OpenVINO uses AMX and VNNI where onnxruntime's
CPU provider uses less), so it is measured where it is served, never assumed. Both read the same
file and its ``metadata_props``. ``bf16`` (``MODEL_VARIANT=bf16``) is the fp32 file computed in
bfloat16 by OpenVINO, which alone of the two has it; a CPU without bf16 instructions runs it in fp32.

``import openvino`` sends an event to Google Analytics when its telemetry package is installed
(opted in unless a consent file says otherwise); without that package it uses its own stub, so
``import_openvino`` makes that import fail first.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from inference.environment import Precision, Runtime

log = logging.getLogger(__name__)
PROBE_BATCHES = (1, 4)  # auto's timing: one image (one client), and a gathered batch (under load)
PROBE_REPEATS = 5
# before each timed probe run: the other runtime's idle threads spin for a while after its run (onnxruntime's
# pool, OpenVINO's TBB), and a run timed meanwhile got half the cores: OpenVINO, 25% faster than onnxruntime
# at batch 4 run alone, measured 5% slower in turn without it (ViT-B int8 on 2 cores of a Zen 5)
PROBE_SETTLE_S = 0.1
# auto keeps OpenVINO only if its probabilities are this close to onnxruntime's, by the file's precision. int8:
# the two round differently (onnxruntime's AVX2 kernel sums u8*s8 pairs in int16; 0.0017 apart on a tiny
# ViT), and 0.01 is a third of the ViT-B int8 file's own distance from fp32
AGREEMENT_ATOL = {"fp32": 1e-3, "int8": 1e-2}
# OpenVINO must be this much faster: each worker measures on its own, and two workers timing the runtimes
# nearly alike split between them, so one service's answers differed by worker (4e-6 in a CI run)
OPENVINO_MARGIN = 0.1


class Graph(Protocol):
    """A loaded file: its metadata, its outputs, the precision it computes in, and one run of named
    outputs on an ``image`` batch."""

    runtime: str
    metadata: dict[str, str]
    outputs: frozenset[str]
    precision: str

    def run(self, names: Sequence[str], batch: np.ndarray) -> list[np.ndarray]: ...


@dataclass
class OnnxRuntimeGraph:
    session: ort.InferenceSession
    runtime: str = "onnxruntime"

    @classmethod
    def open(cls, path: Path, threads: int, precision: Precision = "fp32") -> OnnxRuntimeGraph:
        if precision != "fp32":
            raise ValueError(f"onnxruntime's CPU provider does not compute in {precision}: OpenVINO does")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        return cls(ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))

    @functools.cached_property
    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    @functools.cached_property  # read on every request (has_rollout): once per loaded file
    def outputs(self) -> frozenset[str]:
        return frozenset(output.name for output in self.session.get_outputs())

    @property
    def precision(self) -> str:
        return self.metadata.get("precision", "fp32")

    def run(self, names: Sequence[str], batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(list(names), {"image": batch})


@dataclass
class OpenVinoGraph:
    compiled: Any  # openvino.CompiledModel: openvino is imported only where it is used
    metadata: dict[str, str]
    precision: str  # what its floating-point layers compute in (an int8 file's int8 layers stay int8)
    runtime: str = "openvino"

    @classmethod
    def open(cls, path: Path, threads: int, precision: Precision = "fp32") -> OpenVinoGraph:
        core = openvino_core()
        model = core.read_model(str(path))
        framework = model.get_rt_info()["framework"] if model.has_rt_info(["framework"]) else {}
        metadata = {key: value.astype(str) for key, value in framework.items()}  # the ONNX metadata_props
        # f32 unless bf16 is asked for: OpenVINO otherwise runs bf16 by itself on CPUs that have it
        hint = "bf16" if precision == "bf16" else "f32"
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint}
        compiled = core.compile_model(model, "CPU", config)
        ran = compiled.get_property("INFERENCE_PRECISION_HINT").to_string().replace("f32", "fp32")
        if ran != precision:
            log.warning("%s: this CPU has no %s instructions; OpenVINO computes in %s", path, precision, ran)
        return cls(compiled, metadata, "int8" if metadata.get("precision") == "int8" else ran)

    @functools.cached_property  # read on every request (has_rollout): once per loaded file
    def outputs(self) -> frozenset[str]:
        return frozenset(output.get_any_name() for output in self.compiled.outputs)

    def run(self, names: Sequence[str], batch: np.ndarray) -> list[np.ndarray]:
        results = self.compiled({"image": batch})  # a new request per call: callers take turns anyway
        return [np.array(results[self.compiled.output(name)]) for name in names]


OPENERS: dict[str, Callable[[Path, int, Precision], Graph]] = {
    "onnxruntime": OnnxRuntimeGraph.open,
    "openvino": OpenVinoGraph.open,
}


def import_openvino() -> ModuleType:
    """``openvino`` with its telemetry's stub: a ``None`` in ``sys.modules`` makes an import raise ImportError."""
    sys.modules.setdefault("openvino_telemetry", None)
    import openvino

    return openvino


@functools.cache
def openvino_core() -> Any:  # openvino.Core: openvino is imported only here
    """The process's one ``openvino.Core``, never released. Each Core's CPU plugin installs its own
    signal stack (sigaltstack) and puts back the one it found when it goes: Cores released in
    another order than last-in-first-out (a model reload does that) leave the thread on a freed
    stack, and the next signal a handler takes there (SIGCHLD, SIGHUP) kills the process with
    SIGSEGV (measured with OpenVINO 2026.4: a fit after the inference benchmark)."""
    return import_openvino().Core()


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def open_graph(path: Path, runtime: Runtime, threads: int, precision: Precision = "fp32") -> Graph:
    """The file in ``runtime``; ``auto``: the faster of the two that agree, onnxruntime without OpenVINO
    (bf16: OpenVINO, the only one that has it)."""
    if precision == "bf16" and runtime == "auto":
        runtime = "openvino"
    if runtime != "auto":
        return OPENERS[runtime](path, threads, precision)
    fallback = OnnxRuntimeGraph.open(path, threads)
    if not openvino_installed():
        return fallback
    try:
        candidate = OpenVinoGraph.open(path, threads)
    except Exception as error:  # noqa: BLE001 - a file OpenVINO cannot read is still served, by onnxruntime
        log.warning("OpenVINO cannot load %s (%s); serving it with onnxruntime", path, error)
        return fallback
    if "input_size" not in fallback.metadata:  # not a model of ours: the predictor refuses it by name
        return fallback
    return choose(path, fallback, candidate)


def choose(path: Path, fallback: Graph, candidate: Graph) -> Graph:
    """``candidate`` if it agrees with ``fallback`` on a probe batch and costs less per image, summed over
    ``PROBE_BATCHES``; says what was measured either way."""
    size = int(json.loads(fallback.metadata["input_size"])[-1])
    probe = np.random.default_rng(0).normal(size=(max(PROBE_BATCHES), 3, size, size)).astype(np.float32)
    answers = [graph.run(["probability"], probe)[0] for graph in (fallback, candidate)]
    difference = float(np.max(np.abs(answers[0] - answers[1])))
    allowed = agreement_atol(fallback.metadata)
    if difference > allowed:
        problem = f"OpenVINO's probabilities differ from onnxruntime's by {difference:.3g} (allowed {allowed:g})"
        log.warning("%s: %s; serving onnxruntime", path, problem)
        return fallback
    costs = _costs((fallback, candidate), probe)
    faster = costs[candidate.runtime] < costs[fallback.runtime] * (1 - OPENVINO_MARGIN)
    chosen = candidate if faster else fallback
    measured = ", ".join(f"{name} {ms:.1f} ms/image" for name, ms in costs.items())
    log.info("%s: %s; serving %s (they agree to %.2g)", path, measured, chosen.runtime, difference)
    return chosen


def agreement_atol(metadata: dict[str, str]) -> float:
    return AGREEMENT_ATOL["int8" if metadata.get("precision") == "int8" else "fp32"]


def _costs(graphs: Sequence[Graph], probe: np.ndarray) -> dict[str, float]:
    """Each graph's milliseconds per image: at each probe batch size the fastest of ``PROBE_REPEATS``
    runs, summed. The fastest, because other work on the machine only ever slows a run (by the median
    of 3, a worker loading in bench.serving found onnxruntime faster, where OpenVINO was 17% faster
    in a process of its own). The graphs take turns run by run, after one untimed run each
    (OpenVINO compiles for a new shape on its first), so that another worker loading at the same time
    slows both alike; each run after a settle, so that neither runs beside the other's spinning
    threads, as it never does served."""
    samples: dict[tuple[str, int], list[float]] = {(g.runtime, b): [] for g in graphs for b in PROBE_BATCHES}
    for batch in PROBE_BATCHES:
        for graph in graphs:
            graph.run(["probability"], probe[:batch])
    for _ in range(PROBE_REPEATS):
        for batch in PROBE_BATCHES:
            for graph in graphs:
                time.sleep(PROBE_SETTLE_S)
                started = time.perf_counter()
                graph.run(["probability"], probe[:batch])
                samples[graph.runtime, batch].append((time.perf_counter() - started) * 1000 / batch)
    return {g.runtime: sum(min(samples[g.runtime, b]) for b in PROBE_BATCHES) for g in graphs}
