"""The serving settings read from the environment, every bad value refused at once by name.

Standard library only: the gunicorn arbiter checks them before it forks a worker (it must never
import onnxruntime, see ``inference.cores``), so a bad value stops the service with one line
instead of a worker traceback, and the Lambda's init phase fails the same way.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from inference.limits import Limits

VARIANTS = ("auto", "fp32", "int8")
Runtime = Literal["auto", "onnxruntime", "openvino"]  # what runs the graph (inference/runtimes.py)
RUNTIMES: tuple[str, ...] = get_args(Runtime)
WHOLE = "a whole number of at least 1"


class SettingError(ValueError):
    """Environment variables with values the service cannot use; the message names each one."""


def serving_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """``MODEL_ROOT``, ``MODEL_NAME``, ``MODEL_VARIANT``, ``MODEL_RUNTIME``, ``INFERENCE_WORKERS``, the
    request limits, request batching (``BATCH_WAIT_MS``, ``BATCH_MAX_IMAGES``),
    ``MODEL_RELOAD_CHECK_SECONDS`` and ``MODEL_CACHE`` (where the last model that loaded is kept) as
    plain values; unset or empty is the default."""
    problems: list[str] = []
    default = Limits()

    def read(name: str, default: object, parse: Callable[[str], Any], rule: str) -> Any:
        text = env.get(name) or str(default)
        if (value := parse(text)) is None:
            problems.append(f"{name}={text!r}: expected {rule}")
        return value

    settings = {
        "model_root": env.get("MODEL_ROOT") or "models",
        "model_name": env.get("MODEL_NAME") or "vit_base_patch16_224",
        "variant": read("MODEL_VARIANT", "auto", _one_of(VARIANTS), f"one of {', '.join(VARIANTS)}"),
        "runtime": read("MODEL_RUNTIME", "auto", _one_of(RUNTIMES), f"one of {', '.join(RUNTIMES)}"),
        "workers": read("INFERENCE_WORKERS", 1, _whole, WHOLE),
        "max_bytes": read("MAX_IMAGE_BYTES", default.max_bytes, _whole, WHOLE),
        "max_batch": read("MAX_BATCH", default.max_batch, _whole, WHOLE),
        "max_pixels": read("MAX_IMAGE_PIXELS", default.max_pixels, _whole, WHOLE),
        "max_request_bytes": read("MAX_REQUEST_BYTES", default.max_request_bytes, _whole, WHOLE),
        "max_request_pixels": read("MAX_REQUEST_PIXELS", default.max_request_pixels, _whole, WHOLE),
        "batch_wait_ms": read("BATCH_WAIT_MS", 0, _milliseconds, "a number of milliseconds from 0 (off) to 1000"),
        "batch_max_images": read("BATCH_MAX_IMAGES", 8, _whole, WHOLE),
        "reload_check_seconds": read("MODEL_RELOAD_CHECK_SECONDS", 1.0, _seconds, "a number of seconds >= 0"),
        "model_cache": env.get("MODEL_CACHE") or str(Path(tempfile.gettempdir()) / "mhist-last-good"),
    }
    if settings["runtime"] == "openvino" and importlib.util.find_spec("openvino") is None:
        problems.append("MODEL_RUNTIME='openvino': OpenVINO is not installed here (requirements/server.txt has it)")
    if problems:
        raise SettingError("; ".join(problems))
    return settings


def whole_number(env: Mapping[str, str], name: str, default: int) -> int:
    """One positive whole number (gunicorn's layout and timeout); unset or empty is the default."""
    text = env.get(name) or str(default)
    if (value := _whole(text)) is None:
        raise SettingError(f"{name}={text!r}: expected {WHOLE}")
    return value


def _whole(text: str) -> int | None:
    return int(text) if text.isdigit() and int(text) >= 1 else None


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def _milliseconds(text: str) -> float | None:
    value = _seconds(text)
    return value if value is not None and value <= 1000 else None


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str | None]:
    return lambda text: text if text in choices else None
