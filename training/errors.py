"""Errors caused by the user's data or configuration: reported as one clear message, no traceback."""

from __future__ import annotations


class TrainingSetupError(ValueError):
    """Something the user can fix in the data folder or the config; the message says what."""
