"""Errors caused by the user's data or configuration: reported as one clear message, no traceback."""

from __future__ import annotations

from collections.abc import Iterable


class TrainingSetupError(ValueError):
    """Something the user can fix in the data folder or the config; the message says what."""


def out_of_range(checks: Iterable[tuple[str, object, bool, str]]) -> list[str]:
    """``name must be rule, got value`` for every failed ``(name, value, ok, rule)``."""
    return [f"{name} must be {rule}, got {value}" for name, value, ok, rule in checks if not ok]


def refuse_out_of_range(section: str, checks: Iterable[tuple[str, object, bool, str]]) -> None:
    """Every failed ``(name, value, ok, rule)`` of a config section at once, before anything runs:
    torch, Lightning and the threshold tuning would refuse them later, with a traceback."""
    if problems := out_of_range(checks):
        raise TrainingSetupError(f"{section}: " + "; ".join(problems))
