"""The serving settings read from the environment, every bad value refused at once by name.

Standard library only: the gunicorn arbiter checks them before it forks a worker (it must never
import onnxruntime, see ``inference.cores``), so a bad value stops the service with one line
instead of a worker traceback, and the Lambda's init phase fails the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

VARIANTS = ("auto", "fp32", "int8")


class SettingError(ValueError):
    """Environment variables with values the service cannot use; the message names each one."""


def serving_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """``MODEL_ROOT``, ``MODEL_NAME``, ``MODEL_VARIANT``, ``INFERENCE_WORKERS``, the request limits
    and ``MODEL_RELOAD_CHECK_SECONDS`` as plain values; unset or empty is the default."""
    problems: list[str] = []

    def read(name: str, default: object, parse: Callable[[str], Any], ok: Callable[[Any], bool], rule: str) -> Any:
        text = env.get(name) or str(default)
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            problems.append(f"{name}={text!r}: expected {rule}")
        return value

    def whole(name: str, default: int) -> int:
        return read(
            name, default, lambda t: int(t) if t.isdigit() else None, lambda v: v >= 1, "a whole number of at least 1"
        )

    settings = {
        "model_root": env.get("MODEL_ROOT") or "models",
        "model_name": env.get("MODEL_NAME") or "vit_base_patch16_224",
        "variant": read("MODEL_VARIANT", "auto", str, lambda v: v in VARIANTS, f"one of {', '.join(VARIANTS)}"),
        "workers": whole("INFERENCE_WORKERS", 1),
        "max_bytes": whole("MAX_IMAGE_BYTES", 10 * 1024 * 1024),
        "max_batch": whole("MAX_BATCH", 32),
        "max_pixels": whole("MAX_IMAGE_PIXELS", 40_000_000),
        "reload_check_seconds": read(
            "MODEL_RELOAD_CHECK_SECONDS", 1.0, float, lambda v: v >= 0, "a number of seconds >= 0"
        ),  # fmt: skip
    }
    if problems:
        raise SettingError("; ".join(problems))
    return settings


def whole_number(env: Mapping[str, str], name: str, default: int) -> int:
    """One positive whole number (gunicorn's layout and timeout); unset or empty is the default."""
    text = env.get(name) or str(default)
    if not text.isdigit() or int(text) < 1:
        raise SettingError(f"{name}={text!r}: expected a whole number of at least 1")
    return int(text)
