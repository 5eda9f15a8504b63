"""``Predictor``: one onnxruntime session per process, the model's own threshold and preprocessing.

Knows nothing about HTTP. Everything it needs (threshold, mean, std, input size, class names)
comes from the ONNX file's metadata: nothing is configured twice.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from inference import errors
from inference.batching import Batching, Gatherer
from inference.cores import available_cpus
from inference.environment import Precision, Variant
from inference.limits import Limits
from inference.preprocessing import Interpolation, load, open_image, to_input
from inference.responses import Prediction
from inference.runtimes import Graph, Runtime, open_graph
from inference.screening import tissue_problem
from inference.store_files import MODEL_FILES

log = logging.getLogger(__name__)
REQUIRED_METADATA = ("model_name", "threshold", "mean", "std", "input_size", "positive_class", "negative_class")
FILES = MODEL_FILES
STATIC_INT8 = "static"  # the metadata's ``quantization`` when activation scales were fixed at export
OOD_REASON = "unlike the training images (its features are farther from them than the guard's cut-off)"


@functools.lru_cache(maxsize=32)
def _int8_servable(path: str, identity: tuple[int, int, int]) -> bool:
    """The int8 file's gate verdict, read once per version of the file (``identity`` changes with it)."""
    try:
        meta = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).get_modelmeta()
    except Exception as error:  # noqa: BLE001 - a bad int8 file falls back to fp32, loudly
        log.warning("cannot read %s (%s); using fp32", path, error)
        return False
    servable = meta.custom_metadata_map.get("servable") == "true"
    if not servable:
        log.info("%s is not marked servable; using fp32", path)
    return servable


def resolve_model_path(root: Path, model_name: str, variant: Variant = "auto") -> Path:
    """``<root>/<model_name>/model.onnx`` or ``model.int8.onnx``; ``auto`` takes int8 where its gate passed.

    Called on every reload check, so the int8 verdict is cached per file version, not re-read.
    """
    folder = root / model_name
    if variant != "auto":
        return folder / FILES["int8" if variant == "int8" else "fp32"]  # bf16: the fp32 file, in bfloat16
    int8 = folder / FILES["int8"]
    try:
        stat = int8.stat()
    except OSError:
        return folder / FILES["fp32"]
    identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return int8 if _int8_servable(str(int8), identity) else folder / FILES["fp32"]


@dataclass
class Predictor:
    """A loaded model. ``Predictor.load`` raises ``ServingError(model_not_ready)`` naming the path."""

    path: Path
    graph: Graph
    metadata: dict[str, str]
    limits: Limits = field(default_factory=Limits)
    load_seconds: float = 0.0
    batching: Batching = field(default_factory=Batching)
    _run_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        gathers = self.batching.wait_ms > 0 and self.batch_independent
        wait_s, most = self.batching.wait_ms / 1000, self.batching.max_images
        self.gatherer = Gatherer(self._run_graph, wait_s=wait_s, max_images=most) if gathers else None

    def _run_graph(self, names: list[str], batch: np.ndarray) -> list[np.ndarray]:
        return self.graph.run(names, batch)  # the graph of the moment, a stand-in's in a test

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        threads: int | None = None,
        limits: Limits | None = None,
        runtime: Runtime = "onnxruntime",
        batching: Batching | None = None,
        precision: Precision = "fp32",
    ) -> Predictor:
        started = time.perf_counter()
        if not path.is_file():
            raise errors.model_not_ready(f"{path} does not exist")
        try:
            graph = open_graph(path, runtime, threads or available_cpus(), precision)
        except Exception as error:
            raise errors.model_not_ready(f"{path} cannot be loaded: {error}") from error
        metadata = graph.metadata
        missing = [key for key in REQUIRED_METADATA if key not in metadata]
        if missing:
            raise errors.model_not_ready(f"{path} lacks metadata {missing}: export it with training/export.py")
        seconds = time.perf_counter() - started
        predictor = cls(path, graph, metadata, limits or Limits(), seconds, batching or Batching())
        guard = "no OOD guard" if predictor.ood_cutoff is None else f"OOD cut-off {predictor.ood_cutoff:.4g}"
        runs = f"{graph.runtime} in {graph.precision}"
        log.info("loaded %s (%s) in %.2f s with %s, %s", path, predictor.name, seconds, runs, guard)
        if metadata.get("servable", "true") != "true":  # only a variant asked for by name gets here
            log.warning(
                "%s failed its quality gate against fp32 (AUROC drop %s, labels agreeing %s); it is "
                "served because it was asked for by name",
                path,
                metadata.get("int8_auroc_drop", "?"),
                metadata.get("int8_label_agreement", "?"),
            )
        return predictor

    @property
    def name(self) -> str:
        return self.metadata["model_name"]

    @property
    def version(self) -> str:
        return self.metadata.get("mlflow_run_id", "")

    @functools.cached_property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])

    @functools.cached_property
    def input_size(self) -> int:
        return int(json.loads(self.metadata["input_size"])[-1])

    @functools.cached_property
    def interpolation(self) -> Interpolation:
        """The resize the model was trained with; files exported before it was recorded used bilinear."""
        return self.metadata.get("interpolation", "bilinear")

    @functools.cached_property
    def normalization(self) -> tuple[list[float], list[float]]:
        """(mean, std) from the metadata, parsed once per loaded model rather than per request."""
        return json.loads(self.metadata["mean"]), json.loads(self.metadata["std"])

    def card(self) -> dict[str, Any]:
        """The model card: metadata with its JSON values decoded."""
        card: dict[str, Any] = {}
        for key, value in self.metadata.items():
            try:
                card[key] = json.loads(value) if value[:1] in "[{" else value
            except json.JSONDecodeError:
                card[key] = value
        served = {
            "file": self.path.name,
            "load_seconds": self.load_seconds,
            "runtime": self.graph.runtime,
            "computed_in": self.graph.precision,
            "fidelity": None if self.graph.fidelity is None else self.graph.fidelity.report(),
        }
        limits = {k: getattr(self.limits, k) for k in ("max_bytes", "max_batch", "max_request_bytes")}  # what to send
        return {**card, "threshold": self.threshold, **served, "limits": limits, "batching": self.batching_report()}

    def batching_report(self) -> dict[str, Any]:
        """The gathering settings and what they achieved over the last runs (``/metadata``)."""
        runs = self.gatherer.runs if self.gatherer else []
        return {
            "wait_ms": self.batching.wait_ms if self.gatherer else 0.0,
            "max_images": self.batching.max_images,
            "runs": len(runs),
            "mean_images_per_run": round(sum(runs) / len(runs), 3) if runs else None,
            "largest_run": max(runs, default=None),
            "total_runs": self.gatherer.total_runs if self.gatherer else 0,
            "total_images": self.gatherer.total_images if self.gatherer else 0,
        }

    def check(self, images: Sequence[bytes]) -> None:
        """Refuse before any decoding: too many images, or one too many bytes."""
        if not images:
            raise errors.empty_body()
        if len(images) > self.limits.max_batch:
            raise errors.too_many_images(len(images), self.limits.max_batch)
        for data in images:
            if len(data) > self.limits.max_bytes:
                raise errors.payload_too_large(len(data), self.limits.max_bytes)

    @functools.cached_property
    def batch_independent(self) -> bool:
        """Whether one run of several images gives each the answer it gets alone. Dynamic quantization
        (every int8 file before static scales) sets activation scales per run, from all its images."""
        return self.metadata.get("precision") != "int8" or self.metadata.get("quantization") == STATIC_INT8

    @property
    def outputs(self) -> frozenset[str]:
        return self.graph.outputs

    @functools.cached_property
    def ood_cutoff(self) -> float | None:
        """The guard's cut-off on the graph's ``ood_score``, or None for a file exported without one."""
        return (
            float(self.metadata["ood_cutoff"])
            if "ood_score" in self.outputs and "ood_cutoff" in self.metadata
            else None
        )

    @property
    def has_rollout(self) -> bool:
        """A ViT exported with its attention rollout as an output."""
        return "attention_rollout" in self.outputs

    def run(self, batch: np.ndarray, *outputs: str) -> list[np.ndarray]:
        """The graph on an input batch: the named outputs (``probability`` when none are named), one run at
        a time, image by image where the file's answers would otherwise depend on the batch."""
        names = list(outputs or ("probability",))
        if self.gatherer is not None:  # with other requests' images, where they wait
            return self.gatherer.run(names, batch)
        runs = [batch] if self.batch_independent else np.split(batch, len(batch))
        with self._run_lock:  # one run at a time: the session's threads already use every core it was given
            results = [self.graph.run(names, run) for run in runs]
        return [np.concatenate([r[i] for r in results]) for i in range(len(names))]

    def inputs(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Decoded RGB images -> the graph's input batch, preprocessed as the model was trained."""
        mean, std = self.normalization
        return np.stack([to_input(image, self.input_size, mean, std, self.interpolation) for image in images])

    def scores(
        self, images: Sequence[bytes], *extra: str
    ) -> tuple[np.ndarray, np.ndarray | None, list[str | None], list[np.ndarray]]:
        """Per image: P(SSA); the OOD score as a multiple of its cut-off (None without a guard); why the
        image itself is not an H&E patch (None when its colours allow it); and the graph's ``extra``
        outputs, from the same run."""
        self.check(images)
        with self.gatherer.preparing() if self.gatherer else contextlib.nullcontext():  # others wait for these
            opened = [open_image(data, max_pixels=self.limits.max_pixels) for data in images]  # headers only
            pixels = sum(image.width * image.height for image in opened)
            if pixels > self.limits.max_request_pixels:
                raise errors.request_too_large(pixels, self.limits.max_request_pixels)
            decoded = [load(image) for image in opened]
            problems = [tissue_problem(image) for image in decoded]
            batch = self.inputs(decoded)
        guarded = self.ood_cutoff is not None
        outputs = self.run(batch, "probability", *(["ood_score"] if guarded else []), *extra)
        ood_scores = outputs[1].astype(float) / self.ood_cutoff if guarded else None
        return outputs[0].astype(float), ood_scores, problems, outputs[len(outputs) - len(extra) :]

    def probabilities(self, images: Sequence[bytes]) -> np.ndarray:
        return self.scores(images)[0]

    def predict(self, images: Sequence[bytes]) -> list[dict[str, Any]]:
        """One answer per image: probability, label by the model's threshold, threshold, whether the image
        looks like what the model learned (and why not), model, time."""
        started = time.perf_counter()
        probabilities, ood_scores, problems, _ = self.scores(images)
        return self.answers(probabilities, ood_scores, problems, round((time.perf_counter() - started) * 1000, 2))

    def answers(
        self, probabilities: np.ndarray, ood_scores: np.ndarray | None, problems: list[str | None], latency_ms: float
    ) -> list[dict[str, Any]]:
        """``scores``' figures as the API's answers."""
        positive, negative = self.metadata["positive_class"], self.metadata["negative_class"]
        answers = []
        for i, p in enumerate(probabilities):
            ood = None if ood_scores is None else round(float(ood_scores[i]), 4)
            reason = problems[i] or (OOD_REASON if ood is not None and ood > 1 else None)
            answers.append(
                Prediction(
                    model=self.name,
                    model_version=self.version,
                    probability=round(float(p), 6),
                    label=positive if p >= self.threshold else negative,
                    threshold=self.threshold,
                    in_distribution=reason is None,
                    ood_score=ood,
                    ood_reason=reason,
                    latency_ms=latency_ms,
                ).model_dump()
            )
        return answers
