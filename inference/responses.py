"""What both front doors answer, as models: the answers are built through them and the OpenAPI
document's schemas are theirs (``inference/openapi.py``), so the two cannot drift apart."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Prediction(Response):
    """One image's answer."""

    model: str
    model_version: str
    probability: float = Field(ge=0, le=1, description="P(SSA)")
    label: str = Field(description="SSA when probability >= threshold, else HP")
    threshold: float = Field(ge=0, le=1, description="tuned on validation, stored with the model")
    in_distribution: bool = Field(description="false: the image is unlike what the model learned from")
    ood_score: float | None = Field(description="distance / the guard's cut-off; above 1 is out of distribution")
    ood_reason: str | None
    latency_ms: float


class Explanation(Response):
    method: Literal["attention rollout", "occlusion"]
    meaning: str
    grid: list[int] = Field(min_length=2, max_length=2, description="rows, columns of map")
    map: list[list[float]]
    overlay_png: str = Field(json_schema_extra={"format": "byte"}, description="the map over the image, base64 PNG")
    latency_ms: float = Field(description="what the explanation added to the answer")


class ExplainedPrediction(Prediction):
    explanation: Explanation


class Predictions(Response):
    predictions: list[Prediction] = Field(description="one per image, in the request's order")
    latency_ms: float


class Refusal(Response):
    code: str
    message: str


class ErrorBody(Response):
    error: Refusal


class Status(Response):
    status: str


class Readiness(Status):
    model: str
    model_version: str
    problem: str | None = Field(None, description="serving the last good model, and why the newer one is not")
