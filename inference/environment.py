"""The serving settings read from the environment: pydantic models over it, every bad value refused at
once by name.

No onnxruntime here: the gunicorn arbiter checks them before it forks a worker (it must never import
onnxruntime, see ``inference.cores``), so a bad value stops the service with one line instead of a
worker traceback, and the Lambda's init phase fails the same way. The models validate a mapping
(``os.environ`` at the edges, a dict in tests); unset or empty is the default, as docker-compose
passes an unset variable as an empty one.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from inference.limits import Limits

# which file of the model: auto takes int8 where its gate passed; bf16 the fp32 file, computed in bfloat16
Variant = Literal["auto", "fp32", "int8", "bf16"]
Precision = Literal["fp32", "bf16"]  # what a graph's floating-point layers compute in (inference/runtimes.py)
Runtime = Literal["auto", "onnxruntime", "openvino"]  # what runs the graph (inference/runtimes.py)
Seconds = Annotated[float, Field(ge=0)]


def precision_of(variant: Variant) -> Precision:
    """What the variant's graph computes in: bf16 for that variant (the fp32 file), fp32 otherwise (an
    int8 file's int8 layers are int8 whatever this says)."""
    return "bf16" if variant == "bf16" else "fp32"


class SettingError(ValueError):
    """Environment variables with values the service cannot use; the message names each one."""


def one_line(error: ValidationError) -> str:
    """``NAME='value': what is wrong`` for each refused variable, joined by ``; ``."""
    problems = []
    for detail in error.errors(include_url=False):
        if detail["type"] == "value_error":  # a check across settings, already worded by name
            problems.append(str(detail["ctx"]["error"]))
        else:
            problems.append(f"{'.'.join(map(str, detail['loc']))}={detail['input']!r}: {detail['msg']}")
    return "; ".join(problems)


class EnvironmentSettings(BaseModel):
    """Settings whose field aliases are environment variable names."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Self:
        try:
            return cls.model_validate({name: value for name, value in env.items() if value != ""})
        except ValidationError as error:
            raise SettingError(one_line(error)) from None


class ServingSettings(EnvironmentSettings):
    """What both front doors read: the model, its runtime, the request limits, request batching,
    reloads and where the last model that loaded is kept."""

    model_root: Path = Field(Path("models"), alias="MODEL_ROOT")
    model_name: str = Field("vit_base_patch16_224", alias="MODEL_NAME")
    variant: Variant = Field("auto", alias="MODEL_VARIANT")
    runtime: Runtime = Field("auto", alias="MODEL_RUNTIME")
    workers: PositiveInt = Field(1, alias="INFERENCE_WORKERS")
    max_bytes: PositiveInt = Field(Limits.max_bytes, alias="MAX_IMAGE_BYTES")
    max_batch: PositiveInt = Field(Limits.max_batch, alias="MAX_BATCH")
    max_pixels: PositiveInt = Field(Limits.max_pixels, alias="MAX_IMAGE_PIXELS")
    max_request_bytes: PositiveInt = Field(Limits.max_request_bytes, alias="MAX_REQUEST_BYTES")
    max_request_pixels: PositiveInt = Field(Limits.max_request_pixels, alias="MAX_REQUEST_PIXELS")
    batch_wait_ms: float = Field(0.0, ge=0, le=1000, alias="BATCH_WAIT_MS")  # 0: no gathering
    batch_max_images: PositiveInt = Field(8, alias="BATCH_MAX_IMAGES")
    reload_check_seconds: Seconds = Field(1.0, alias="MODEL_RELOAD_CHECK_SECONDS")
    model_cache: Path = Field(Path(tempfile.gettempdir()) / "mhist-last-good", alias="MODEL_CACHE")

    @model_validator(mode="after")
    def _runtime_is_installed(self) -> Self:
        openvino = importlib.util.find_spec("openvino") is not None
        if self.runtime == "openvino" and not openvino:
            raise ValueError(
                "MODEL_RUNTIME='openvino': OpenVINO is not installed here (requirements/server.txt has it)"
            )
        if self.variant == "bf16" and (self.runtime == "onnxruntime" or not openvino):
            why = "MODEL_RUNTIME='onnxruntime' has no bf16" if openvino else "OpenVINO is not installed here"
            raise ValueError(f"MODEL_VARIANT='bf16' is computed by OpenVINO: {why}")
        return self

    @property
    def limits(self) -> Limits:
        return Limits(self.max_bytes, self.max_batch, self.max_pixels, self.max_request_bytes, self.max_request_pixels)
