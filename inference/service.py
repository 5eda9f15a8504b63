"""What both front doors share: settings from the environment, and the model held for a process.

``ModelHolder`` swaps in a model replaced on disk (write-then-rename, as the publisher does)
without dropping requests: the old session keeps answering until the new one has loaded.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from inference import errors
from inference.cores import session_threads
from inference.environment import serving_settings
from inference.predictor import Limits, Predictor, Variant, resolve_model_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingConfig:
    model_root: Path
    model_name: str
    variant: Variant = "auto"
    workers: int = 1
    limits: Limits = Limits()
    reload_check_seconds: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ServingConfig:
        """Read once, at the edge (the app factory, the Lambda module); bad values raise ``SettingError``."""
        settings = serving_settings(env)
        return cls(
            model_root=Path(settings["model_root"]),
            model_name=settings["model_name"],
            variant=settings["variant"],
            workers=settings["workers"],
            limits=Limits(settings["max_bytes"], settings["max_batch"], settings["max_pixels"]),
            reload_check_seconds=settings["reload_check_seconds"],
        )

    @property
    def threads(self) -> int:
        return session_threads(self.workers)


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class ModelHolder:
    """The process's predictor, reloaded when its file changes (checked at most once a second)."""

    def __init__(self, config: ServingConfig) -> None:
        self.config = config
        self.predictor: Predictor | None = None
        self.error = "not loaded yet"
        self._identity: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self.reload(force=True)

    def path(self) -> Path:
        return resolve_model_path(self.config.model_root, self.config.model_name, self.config.variant)

    def reload(self, *, force: bool = False) -> bool:
        """Load the file if it changed; keep serving the old model if the new one is bad."""
        with self._lock:
            path = self.path()
            identity = _identity(path)
            if not force and identity == self._identity:
                return False
            try:
                predictor = Predictor.load(path, threads=self.config.threads, limits=self.config.limits)
            except errors.ServingError as error:
                self._identity = identity
                self.error = error.message
                log.error("model not loaded: %s", error.message)
                return False
            self.predictor, self._identity, self.error = predictor, identity, ""
            return True

    def get(self) -> Predictor:
        now = time.monotonic()
        if now - self._checked >= self.config.reload_check_seconds:
            self._checked = now
            self.reload()
        if self.predictor is None:
            raise errors.model_not_ready(self.error)
        return self.predictor
