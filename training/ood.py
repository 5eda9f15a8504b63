"""The out-of-distribution guard's reference: class-conditional Gaussians with one shared covariance
on the network's penultimate features (Lee et al., 2018), scored in the exported graph.

The score is the Mahalanobis distance to the nearer class mean, through a whitening matrix, so
the graph needs one MatMul and serving needs no statistics of its own. The cut-off is the
validation split's ``1 - FALSE_ALARM_RATE`` quantile, set for each exported file on its own scores.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from sklearn.covariance import LedoitWolf
from torch import nn

from inference.predictor import Predictor
from inference.preprocessing import to_rgb
from training.demo_data import draw_image

FALSE_ALARM_RATE = 0.05


class MahalanobisScore(nn.Module):
    """Features ``[batch, d]`` -> distance to the nearer class mean ``[batch]``."""

    def __init__(self, whitening: np.ndarray, whitened_means: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("whitening", torch.as_tensor(whitening, dtype=torch.float32))
        self.register_buffer("means", torch.as_tensor(whitened_means, dtype=torch.float32))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = features @ self.whitening
        squared = ((z.unsqueeze(1) - self.means.unsqueeze(0)) ** 2).sum(-1)
        return squared.min(dim=1).values.sqrt()


def fit_reference(features: np.ndarray, labels: np.ndarray) -> MahalanobisScore:
    """The score module for training features (float64 here, float32 in the graph). The shared
    covariance is Ledoit and Wolf's shrunk estimate: a ViT-B's 768 features from ~1,700 images are
    too many for the sample covariance to be inverted as it is."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(int).ravel()
    classes = [c for c in (0, 1) if np.any(y == c)]
    means = np.stack([x[y == c].mean(axis=0) for c in classes])
    centred = x - means[np.searchsorted(classes, y)]
    covariance = LedoitWolf(assume_centered=True).fit(centred).covariance_
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    whitening = eigenvectors / np.sqrt(np.maximum(eigenvalues, 1e-12))
    return MahalanobisScore(whitening, means @ whitening)


def cutoff(validation_scores: np.ndarray, false_alarm_rate: float = FALSE_ALARM_RATE) -> float:
    """The score above which an image is called out of distribution."""
    return float(np.quantile(np.asarray(validation_scores, dtype=np.float64), 1 - false_alarm_rate))


FOREIGN_SOURCES = {  # scikit-image's bundled images: no download
    "photographs": ("astronaut", "coffee", "chelsea", "rocket", "cat", "hubble_deep_field", "retina"),
    "greyscale": ("camera", "coins", "moon", "page", "text", "brick", "grass", "gravel"),
    "graphics": ("colorwheel", "logo"),
    "immunohistochemistry": ("immunohistochemistry",),  # another stain (DAB and hematoxylin), not H&E
}
CROP = 224
DEMO_IMAGES = 40


def foreign_images() -> dict[str, list[Image.Image]]:
    """Images that are not H&E patches, per source: each whole, and its four corner crops of 224 px
    where it is larger; plus blank fields (white, and a slide's near-white noise)."""
    from skimage import data  # training only: serving never needs it

    rng = np.random.default_rng(0)
    blank = [np.full((CROP, CROP, 3), 250, np.uint8), np.clip(rng.normal(238, 3, (CROP, CROP, 3)), 0, 255)]
    sources: dict[str, list[Image.Image]] = {"blank": [Image.fromarray(a.astype(np.uint8)) for a in blank]}
    for source, names in FOREIGN_SOURCES.items():
        images = []
        for name in names:
            image = to_rgb(Image.fromarray(getattr(data, name)()))
            images.append(image)
            width, height = image.size
            if min(width, height) > CROP:
                corners = [(0, 0), (width - CROP, 0), (0, height - CROP), (width - CROP, height - CROP)]
                images += [image.crop((x, y, x + CROP, y + CROP)) for x, y in corners]
        sources[source] = images
    return sources


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)  # in memory, read at once: speed over size
    return buffer.getvalue()


def measure_guard(predictor: Predictor, test_images: Sequence[bytes]) -> dict[str, Any]:
    """The guard as serving runs it (the ``Predictor`` of the exported file, colour checks included):
    its false-alarm rate on the test split and its detection rate per source of foreign images."""

    def flags(images: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        by_guard, by_features = [], []
        for start in range(0, len(images), predictor.limits.max_batch):
            _, scores, problems, _ = predictor.scores(images[start : start + predictor.limits.max_batch])
            by_features += [bool(s > 1) for s in scores]
            by_guard += [problem is not None or s > 1 for s, problem in zip(scores, problems, strict=True)]
        return np.asarray(by_guard, dtype=bool), np.asarray(by_features, dtype=bool)

    test_guard, test_features = flags(test_images)
    rng = np.random.default_rng(0)
    demo, _ = flags([_png(draw_image(rng, bool(i % 2))) for i in range(DEMO_IMAGES)])
    detection = {}
    for source, images in foreign_images().items():
        guard, features = flags([_png(image) for image in images])
        detection[source] = {
            "images": len(images),
            "detected": float(guard.mean()),
            "by_features": float(features.mean()),
        }
    everything = sum(d["images"] for d in detection.values())
    return {
        "method": "Mahalanobis distance of the penultimate features to the nearer class mean (shared covariance "
        "of the train split, Lee et al. 2018), and colour checks for a blank field or too little stained area",
        "false_alarm_target": FALSE_ALARM_RATE,
        "cutoff": predictor.ood_cutoff,
        "test_false_alarm_rate": float(test_guard.mean()) if test_guard.size else None,
        "test_false_alarm_rate_by_features": float(test_features.mean()) if test_features.size else None,
        "test_images": len(test_images),
        "detection_rate": sum(d["detected"] * d["images"] for d in detection.values()) / everything,
        "detection_by_source": detection,
        # OOD for a model trained on MHIST (a detection rate), in distribution for the demo models (false alarms)
        "demo_generator_images_flagged": float(demo.mean()),
    }
