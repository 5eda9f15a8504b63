"""Bounded numbers for constructor arguments. LightningCLI (jsonargparse) validates an annotated type
with pydantic, so a value out of bounds is refused by its config key before anything is built."""

from typing import Annotated

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

Fraction = Annotated[float, Field(ge=0, lt=1)]  # a dropout: [0, 1)
ClosedFraction = Annotated[float, Field(ge=0, le=1)]  # a metric's floor: [0, 1]
PositiveFraction = Annotated[float, Field(gt=0, le=1)]  # a sensitivity to reach: (0, 1]
OpenFraction = Annotated[float, Field(gt=0, lt=1)]  # a share of the images: (0, 1)
ImageSide = Annotated[int, Field(ge=16)]  # pixels: a ViT patch is 16

__all__ = [
    "ClosedFraction",
    "Fraction",
    "ImageSide",
    "NonNegativeFloat",
    "NonNegativeInt",
    "OpenFraction",
    "PositiveFloat",
    "PositiveFraction",
    "PositiveInt",
]
