"""Image transforms (torchvision v2). The evaluation transform is the contract serving mirrors.

Resizing happens on the PIL image, before conversion to a tensor, so it is Pillow's resize with
the network's interpolation: exactly what the numpy/Pillow preprocessing in ``inference/`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import torch
from torch import nn
from torchvision.transforms import InterpolationMode, v2

from inference.preprocessing import Interpolation

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class NetworkInput(TypedDict):
    """What a network takes: its image size (None: any) and, when it was pretrained, the mean, std and
    resize interpolation of its pretraining (None each when it was not)."""

    input_size: int | None
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    interpolation: Interpolation | None


def untrained_input(input_size: int | None = None) -> NetworkInput:
    """What a network without pretraining takes: its size at most, no statistics, no interpolation."""
    return {"input_size": input_size, "mean": None, "std": None, "interpolation": None}


def _resize(input_size: int, interpolation: Interpolation) -> v2.Resize:
    return v2.Resize((input_size, input_size), interpolation=InterpolationMode(interpolation))


class RandomQuarterTurn(nn.Module):
    """Rotate by 0, 90, 180 or 270 degrees: lossless, and tissue has no up."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        turns = int(torch.randint(0, 4, ()).item())
        return torch.rot90(image, turns, dims=(-2, -1))


def _to_normalized_tensor(mean: Sequence[float], std: Sequence[float]) -> list[nn.Module]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


def eval_transform(
    input_size: int, mean: Sequence[float], std: Sequence[float], interpolation: Interpolation = "bilinear"
) -> v2.Compose:
    """Resize (Pillow) -> float in [0, 1] -> normalize. Serving reproduces this."""
    return v2.Compose([_resize(input_size, interpolation), *_to_normalized_tensor(mean, std)])


def train_transform(
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    interpolation: Interpolation = "bilinear",
    *,
    quarter_turns: bool = True,
    flips: bool = True,
    color_jitter: float = 0.0,
) -> v2.Compose:
    """The seeds' augmentations (quarter turns, flips) plus optional colour jitter."""
    steps: list[nn.Module] = [_resize(input_size, interpolation)]
    if color_jitter > 0:
        steps.append(v2.ColorJitter(color_jitter, color_jitter, color_jitter, min(color_jitter, 0.5) / 5))
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if flips:
        steps += [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]
    if quarter_turns:
        steps.append(RandomQuarterTurn())
    steps.append(v2.Normalize(list(mean), list(std)))
    return v2.Compose(steps)
