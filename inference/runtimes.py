"""The runtimes that run the ONNX file, behind one call: onnxruntime (always installed, the fallback)
and OpenVINO (the EC2 image has it; the Lambda image does not, for its size and cold start).

Every runtime is judged, as the file loads, against the fp32 file's own answers: the export records
the fp32 probabilities on a probe batch (``probe_fp32``) and how far this file was from them on the
exporting CPU (``probe_distance``, the distance its int8 gate accepted). A runtime within a small
multiple of that distance reproduces what was gated; ``auto`` serves the fastest of those, and the
closest, with a warning, where none is. Which runtime wins depends on the CPU (OpenVINO uses AMX and
VNNI where onnxruntime's CPU provider uses less), so it is measured where it is served, never
assumed. Both read the same file and its ``metadata_props``. ``bf16`` (``MODEL_VARIANT=bf16``) is the
fp32 file computed in bfloat16 by OpenVINO, which alone of the two has it; a CPU without bf16
instructions runs it in fp32.

``import openvino`` sends an event to Google Analytics when its telemetry package is installed
(opted in unless a consent file says otherwise); without that package it uses its own stub, so
``import_openvino`` makes that import fail first.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Protocol

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, Json, NonNegativeFloat, PositiveInt, ValidationError

from inference.environment import Precision, Runtime, one_line

log = logging.getLogger(__name__)
PROBE_BATCHES = (1, 4)  # auto's timing: one image (one client), and a gathered batch (under load)
PROBE_REPEATS = 5
# before each timed probe run: the other runtime's idle threads spin for a while after its run (onnxruntime's
# pool, OpenVINO's TBB), and a run timed meanwhile got half the cores: OpenVINO, 25% faster than onnxruntime
# at batch 4 run alone, measured 5% slower in turn without it (ViT-B int8 on 2 cores of a Zen 5)
PROBE_SETTLE_S = 0.1
PROBE_IMAGES = max(PROBE_BATCHES)
# a runtime reproduces the file if it is within this multiple of the file's distance from fp32 at export, or
# within the floor: runtimes round int8 differently (onnxruntime's AVX2 kernel sums u8*s8 pairs in int16),
# and a fp32 file is 0 from itself where OpenVINO's fp32 is about 1e-6 from onnxruntime's
FIDELITY_FACTOR = 2.0
FIDELITY_FLOOR = 1e-3
# a runtime with none to be chosen against is judged on the first probe image only: the ViT's whole probe
# batch would add 8 images' time to a Lambda cold start (its goal 1.5 s), and a file of ours answers each
# image alike in any batch
JUDGED_ALONE_IMAGES = 1
# OpenVINO must be this much faster: each worker measures on its own, and two workers timing the runtimes
# nearly alike split between them, so one service's answers differed by worker (4e-6 in a CI run)
OPENVINO_MARGIN = 0.1


def probe_batch(size: int) -> np.ndarray:
    """The images every runtime is judged on, at export and at load: seeded noise in the normalized space."""
    return np.random.default_rng(0).normal(size=(PROBE_IMAGES, 3, size, size)).astype(np.float32)


def allowance(at_export: float) -> float:
    """How far from ``probe_fp32`` a runtime may be, for a file that was ``at_export`` from it when gated."""
    return max(FIDELITY_FACTOR * at_export, FIDELITY_FLOOR)


Probability = Annotated[float, Field(ge=0, le=1)]
Settings = Mapping[str, int | str]


class ProbeRecord(BaseModel):
    """What the export records to judge runtimes by (docs/artifact.md), read from a file's metadata: the
    fp32 file's answers on the probe batch, this file's distance from them when gated, and the image size
    the batch is drawn at."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    probe_fp32: Json[Annotated[list[Probability], Field(min_length=PROBE_IMAGES)]]
    probe_distance: NonNegativeFloat = 0.0
    input_size: Json[Annotated[list[PositiveInt], Field(min_length=3, max_length=3)]]

    def probe_batch(self) -> np.ndarray:
        return probe_batch(self.input_size[-1])


@dataclass(frozen=True)
class Fidelity:
    """A loaded runtime's largest probability difference from the fp32 file's recorded answers on
    ``images`` of the probe batch, beside the file's own at export. ``allowed`` is None where nothing is
    judged: bf16 computes the fp32 file in another precision than any gate ran in, so it is reported only."""

    measured: float
    at_export: float
    allowed: float | None
    images: int

    @property
    def within(self) -> bool | None:
        return None if self.allowed is None else self.measured <= self.allowed

    def report(self) -> dict[str, float | bool | None]:
        return {
            "measured": self.measured,
            "allowed": self.allowed,
            "at_export": self.at_export,
            "within": self.within,
            "images": self.images,
        }


class Graph(Protocol):
    """A loaded file: its metadata, its outputs, the precision it computes in, how closely it reproduces
    the fp32 file (None: the file records no probe answers), and one run of named outputs on an
    ``image`` batch."""

    runtime: str
    metadata: dict[str, str]
    outputs: frozenset[str]
    precision: str
    fidelity: Fidelity | None

    def run(self, names: Sequence[str], batch: np.ndarray) -> list[np.ndarray]: ...


@dataclass
class OnnxRuntimeGraph:
    session: ort.InferenceSession
    runtime: str = "onnxruntime"
    fidelity: Fidelity | None = None

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
    fidelity: Fidelity | None = None

    @classmethod
    def open(cls, path: Path, threads: int, precision: Precision = "fp32") -> OpenVinoGraph:
        model, metadata = _read_openvino(path)
        return cls.compile(path, model, metadata, threads, precision)

    @classmethod
    def open_grouped(cls, path: Path, threads: int) -> OpenVinoGraph | None:
        return cls.grouped(path, *_read_openvino(path), threads)

    @classmethod
    def grouped(cls, path: Path, model: Any, metadata: dict[str, str], threads: int) -> OpenVinoGraph | None:
        """A static int8 file run on its int8 weights, its activations quantized by OpenVINO image by image
        in groups of ``ACTIVATION_GROUP`` (in place of the file's fixed scales), where the file lends itself
        to it (``dequantize_activations``); None where it does not. ``model`` is rewired: a clone of one
        still in use."""
        if metadata.get("precision") != "int8" or dequantize_activations(model) == 0:
            return None
        grouped = {"DYNAMIC_QUANTIZATION_GROUP_SIZE": ACTIVATION_GROUP}
        return replace(cls.compile(path, model, metadata, threads, "fp32", grouped), precision=GROUPED)

    @classmethod
    def compile(
        cls,
        path: Path,
        model: Any,
        metadata: dict[str, str],
        threads: int,
        precision: Precision,
        more: Settings | None = None,
    ) -> OpenVinoGraph:
        # f32 unless bf16 is asked for: OpenVINO otherwise runs bf16 by itself on CPUs that have it
        hint = "bf16" if precision == "bf16" else "f32"
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint}
        config |= more or {}
        compiled = openvino_core().compile_model(model, "CPU", config)
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


# OpenVINO's ONNX frontend reads an activation's QuantizeLinear as FakeQuantize then Convert (to u8), and its
# DequantizeLinear as Convert (to f32), Subtract (the zero point) and Multiply (the scale): the files our
# export writes (onnxruntime's quantize_static, u8 activations with zero points), in OpenVINO 2026.4
DEQUANTIZE_CHAIN = ("Convert", "Convert", "Subtract", "Multiply")
# OpenVINO's CPU plugin quantizes the input of a product with int8 weights and float input itself, each row
# (an image here) in groups of this many values: answers alike in any batch. Its default, set so that another
# default is not taken up unseen; without it (0) the MLP runs at 1.3x its static int8 time at batch 1, 2.3x at 8
ACTIVATION_GROUP = 32
GROUPED = "int8-grouped"  # the precision of a static int8 file run so


def dequantize_activations(model: Any) -> int:
    """Rewires, in ``model`` (an ``openvino.Model`` read from a static int8 file), each activation's quantize
    and dequantize to the activation itself, leaving the weights' int8 and scales; says how many. Only where
    every matrix product takes one row per image (an MLP; a ViT's take its tokens): each weight is used once
    an image, so a run at batch 1 is bound by reading the weights, which OpenVINO's products on int8 weights
    (``ACTIVATION_GROUP``) do faster than its static int8 kernels (the MLP: in half their time at batch 1,
    0.56x at batch 8, on an AMX Xeon). Returns 0, rewiring nothing, anywhere else."""
    ops = model.get_ordered_ops()
    ranks = {op.input_value(0).get_partial_shape().rank.get_length() for op in ops if op.get_type_name() == "MatMul"}
    if ranks != {2}:
        return 0
    rewired = 0
    for quantize in (op for op in ops if op.get_type_name() == "FakeQuantize"):
        source = quantize.input_value(0)
        if source.get_node().get_type_name() == "Constant":
            continue  # a weight's
        last = quantize
        for kind in DEQUANTIZE_CHAIN:
            targets = list(last.output(0).get_target_inputs())
            if len(targets) != 1 or targets[0].get_node().get_type_name() != kind:
                break
            last = targets[0].get_node()
        else:
            for target in list(last.output(0).get_target_inputs()):
                target.replace_source_output(source)
            rewired += 1
    model.validate_nodes_and_infer_types()
    return rewired


def _read_openvino(path: Path) -> tuple[Any, dict[str, str]]:
    """The file as an ``openvino.Model``, and its ONNX ``metadata_props``."""
    model = openvino_core().read_model(str(path))
    framework = model.get_rt_info()["framework"] if model.has_rt_info(["framework"]) else {}
    return model, {key: value.astype(str) for key, value in framework.items()}


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
    """The file in ``runtime``, judged against its fp32 answers; ``auto``: the fastest that reproduces
    them, of onnxruntime and OpenVINO where it is installed (bf16: OpenVINO, the only one that has it)."""
    if precision == "bf16" and runtime == "auto":
        runtime = "openvino"
    if runtime != "auto":
        graph = OPENERS[runtime](path, threads, precision)
        record = read_probe_record(path, graph.metadata, f"{runtime}, asked for by name, serves it unjudged")
        if record is not None and judge(graph, record, JUDGED_ALONE_IMAGES).within is False:
            log.warning("%s: %s; served because %s was asked for by name", path, _distance(graph), runtime)
        return graph
    graphs: list[Graph] = [OnnxRuntimeGraph.open(path, threads)]
    if openvino_installed():
        try:
            model, metadata = _read_openvino(path)  # once: reading the MLP's int8 file takes 1.9 s, a clone 1 ms
            graphs.append(OpenVinoGraph.compile(path, model, metadata, threads, "fp32"))
            grouped = OpenVinoGraph.grouped(path, model.clone(), metadata, threads)
            graphs += [grouped] if grouped else []
        except Exception as error:  # noqa: BLE001 - a file OpenVINO cannot read is still served, by onnxruntime
            log.warning("OpenVINO cannot load %s (%s); serving it with onnxruntime", path, error)
    return choose(path, graphs)


def read_probe_record(path: Path, metadata: dict[str, str], served: str) -> ProbeRecord | None:
    """The file's probe record; None for a file that is not a model of ours (the predictor refuses it by
    name), and, saying why and then ``served``, for one without a record or with one that cannot be read."""
    if "input_size" not in metadata:
        return None
    if "probe_fp32" not in metadata:
        log.info("%s records no probe answers (exported before they were); %s", path, served)
        return None
    try:
        return ProbeRecord.model_validate(metadata)
    except ValidationError as error:
        log.warning("%s: its probe record cannot be read (%s); %s", path, one_line(error), served)
        return None


def judge(graph: Graph, record: ProbeRecord, images: int = PROBE_IMAGES) -> Fidelity:
    """Runs the first ``images`` of the probe batch and sets ``graph.fidelity``."""
    reference = np.asarray(record.probe_fp32[:images], dtype=np.float64)
    (answers,) = graph.run(["probability"], record.probe_batch()[:images])
    measured = float(np.max(np.abs(answers - reference)))
    allowed = None if graph.precision == "bf16" else allowance(record.probe_distance)
    graph.fidelity = Fidelity(measured, record.probe_distance, allowed, len(answers))
    return graph.fidelity


def choose(path: Path, graphs: Sequence[Graph]) -> Graph:
    """Of ``graphs`` (the first the fallback), the fastest that reproduces the file, summed over
    ``PROBE_BATCHES``; another than the first only if faster by ``OPENVINO_MARGIN``. Says what was
    measured either way."""
    fallback = graphs[0]
    record = read_probe_record(path, fallback.metadata, f"serving {fallback.runtime}, the runtime its int8 gate ran on")
    if record is None:  # the same file's metadata under every runtime
        return fallback
    images = PROBE_IMAGES if len(graphs) > 1 else JUDGED_ALONE_IMAGES
    for graph in graphs:
        judge(graph, record, images)
    within = [graph for graph in graphs if graph.fidelity.within]
    distances = "; ".join(f"{label(graph)} {_distance(graph)}" for graph in graphs)
    if not within:
        closest = min(graphs, key=lambda graph: graph.fidelity.measured)
        log.warning(
            "%s: no runtime reproduces the exported answers: %s; serving the closest, %s",
            path,
            distances,
            label(closest),
        )
        return closest
    if len(within) == 1:
        alone = ", the only one within" if len(graphs) > 1 else ""
        log.info("%s: %s; serving %s%s", path, distances, label(within[0]), alone)
        return within[0]
    costs = _costs(within, record.probe_batch())
    best = min(within[1:], key=lambda graph: costs[label(graph)])
    chosen = best if costs[label(best)] < costs[label(within[0])] * (1 - OPENVINO_MARGIN) else within[0]
    measured = ", ".join(f"{name} {ms:.1f} ms/image" for name, ms in costs.items())
    log.info("%s: %s; %s; serving %s", path, measured, distances, label(chosen))
    return chosen


def label(graph: Graph) -> str:
    """The runtime, and how it runs the file where one runtime runs it two ways."""
    return f"{graph.runtime} {GROUPED}" if graph.precision == GROUPED else graph.runtime


def _distance(graph: Graph) -> str:
    fidelity = graph.fidelity
    assert fidelity is not None  # judged
    allowed = "not judged" if fidelity.allowed is None else f"allowed {fidelity.allowed:.3g}"
    return f"{fidelity.measured:.3g} from the fp32 answers ({allowed}; {fidelity.at_export:.3g} at export)"


def _costs(graphs: Sequence[Graph], probe: np.ndarray) -> dict[str, float]:
    """Each graph's milliseconds per image: at each probe batch size the fastest of ``PROBE_REPEATS``
    runs, summed. The fastest, because other work on the machine only ever slows a run (by the median
    of 3, a worker loading in bench.serving found onnxruntime faster, where OpenVINO was 17% faster
    in a process of its own). The graphs take turns run by run, after one untimed run each
    (OpenVINO compiles for a new shape on its first), so that another worker loading at the same time
    slows both alike; each run after a settle, so that neither runs beside the other's spinning
    threads, as it never does served."""
    samples: dict[tuple[str, int], list[float]] = {(label(g), b): [] for g in graphs for b in PROBE_BATCHES}
    for batch in PROBE_BATCHES:
        for graph in graphs:
            graph.run(["probability"], probe[:batch])
    for _ in range(PROBE_REPEATS):
        for batch in PROBE_BATCHES:
            for graph in graphs:
                time.sleep(PROBE_SETTLE_S)
                started = time.perf_counter()
                graph.run(["probability"], probe[:batch])
                samples[label(graph), batch].append((time.perf_counter() - started) * 1000 / batch)
    return {label(g): sum(min(samples[label(g), b]) for b in PROBE_BATCHES) for g in graphs}
