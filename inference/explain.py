"""``/explain``: where in the image the answer came from, torch-free and deterministic.

A ViT exported with its attention rollout (Abnar and Zuidema, 2020) answers from the graph's
``attention_rollout`` output; any other model by occlusion (Zeiler and Fergus, 2014): each cell
of a grid is set to the training mean in turn (zero after normalization) and the map is how much
P(SSA) falls, so positive cells hold evidence for SSA and negative ones evidence for HP.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import numpy as np
from PIL import Image

from inference.predictor import Predictor
from inference.preprocessing import decode
from inference.responses import ExplainedPrediction, Explanation

OCCLUSION_GRID = 7  # 32-pixel cells on a 224 image: one batched run of 49 occluded copies
# A perceptual ramp (dark blue -> teal -> yellow, as viridis), drawn over the image at this opacity
RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)
OVERLAY_ALPHA = 0.45


def occlusion_map(predictor: Predictor, batch: np.ndarray, grid: int = OCCLUSION_GRID) -> np.ndarray:
    """``[grid, grid]``: P(SSA) of the image less P(SSA) with each cell occluded."""
    size = batch.shape[-1]
    edges = np.linspace(0, size, grid + 1).round().astype(int)
    copies = np.repeat(batch, grid * grid, axis=0)
    for row in range(grid):
        for column in range(grid):
            copy = copies[row * grid + column]
            copy[:, edges[row] : edges[row + 1], edges[column] : edges[column + 1]] = 0.0
    (probabilities,) = predictor.run(np.concatenate([batch, copies]))
    return (probabilities[0] - probabilities[1:]).reshape(grid, grid)


def overlay_png(image: Image.Image, heatmap: np.ndarray) -> bytes:
    """The map, scaled to [0, 1] over its own range, coloured and blended over the model's view of the image."""
    low, high = float(heatmap.min()), float(heatmap.max())
    unit = (heatmap - low) / (high - low) if high > low else np.zeros_like(heatmap)
    positions = np.linspace(0, 1, len(RAMP))
    colours = np.stack([np.interp(unit, positions, RAMP[:, channel]) for channel in range(3)], axis=-1)
    colour_image = Image.fromarray(colours.astype(np.uint8)).resize(image.size, Image.Resampling.NEAREST)
    blended = Image.blend(image.convert("RGB"), colour_image, OVERLAY_ALPHA)
    buffer = io.BytesIO()
    blended.save(buffer, "PNG", compress_level=1)  # 224 px: fast to make, still small
    return buffer.getvalue()


def explain(predictor: Predictor, data: bytes) -> dict[str, Any]:
    """The answer for one image, and ``explanation``: method, raw map, overlay PNG (base64), and the
    latency of what the explanation added (a rollout comes from the answer's own run)."""
    started = time.perf_counter()
    rollout = ["attention_rollout"] if predictor.has_rollout else []
    probabilities, ood_scores, problems, extra = predictor.scores([data], *rollout)
    (answer,) = predictor.answers(probabilities, ood_scores, problems, round((time.perf_counter() - started) * 1000, 2))
    started = time.perf_counter()
    image = decode(data, max_pixels=predictor.limits.max_pixels)
    view = image.resize((predictor.input_size, predictor.input_size), Image.Resampling.BILINEAR)
    if predictor.has_rollout:
        method, heatmap = "attention rollout", extra[0][0]
    else:
        method, heatmap = "occlusion", occlusion_map(predictor, predictor.inputs([image]))
    explanation = Explanation(
        method=method,
        meaning="share of the class token's attention" if predictor.has_rollout else "fall in P(SSA) when hidden",
        grid=list(heatmap.shape),
        map=np.round(heatmap.astype(float), 6).tolist(),
        overlay_png=base64.b64encode(overlay_png(view, heatmap)).decode("ascii"),
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return ExplainedPrediction(**answer, explanation=explanation).model_dump()
