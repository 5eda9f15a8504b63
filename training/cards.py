"""What a model card says beside its numbers: intended use, the data it learned, its sample counts."""

from __future__ import annotations

import math
from typing import Any

from inference.annotations import CLASS_NAMES
from training.datamodule import MhistDataModule
from training.mhist import fingerprint

INTENDED_USE = (
    "Research use only, not for clinical diagnosis: a second reader for HP vs SSA on 224x224 H&E "
    "patches of colorectal polyps, tuned to miss few SSAs"
)
CLASSES = dict(zip(CLASS_NAMES, ("hyperplastic polyp", "sessile serrated adenoma/lesion"), strict=True))


def description(data: MhistDataModule) -> dict[str, Any]:
    """The card's intended use, classes and data section (description, fingerprint, counts per split)."""
    return {
        "intended_use": INTENDED_USE,
        "classes": CLASSES,
        "data": {
            "description": data.hparams.description,
            "targets": data.hparams.targets,
            **fingerprint(data.root, data.records),
            "splits": data.split_counts,
        },
    }


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity as None: JSON has no NaN (a stratum of one class has no AUROC)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def summary(card: dict[str, Any]) -> dict[str, Any]:
    """The card without its reliability tables and per-source detail: small enough for every answer
    of ``/metadata``, which serves it from the ONNX file's metadata."""
    guard = card.get("out_of_distribution", {})
    return {
        **{k: v for k, v in card.items() if k not in ("out_of_distribution", "files")},
        "out_of_distribution": {k: v for k, v in guard.items() if k != "detection_by_source"}
        | {"detection_by_source": {s: d["detected"] for s, d in guard.get("detection_by_source", {}).items()}},
    }
