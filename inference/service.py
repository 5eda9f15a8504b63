"""What both front doors share: settings from the environment, and the model held for a process.

``ModelHolder`` swaps in a model replaced on disk (write-then-rename, as the publisher does)
without dropping requests: the old session keeps answering until the new one has loaded. The last
model that loaded is copied to a local cache, so a process that starts while the store holds a bad
file (a new worker, a restarted container) serves that model instead of refusing every request.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from inference import errors, logs
from inference.batching import Batching
from inference.cores import session_threads
from inference.environment import ServingSettings, precision_of
from inference.limits import Limits
from inference.predictor import Predictor, Variant, resolve_model_path
from inference.responses import Readiness
from inference.runtimes import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingConfig:
    model_root: Path
    model_name: str
    variant: Variant = "auto"
    runtime: Runtime = "auto"
    workers: int = 1
    limits: Limits = Limits()
    batching: Batching = Batching()
    reload_check_seconds: float = 1.0
    model_cache: Path | None = None  # where the last model that loaded is kept; None: nowhere

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ServingConfig:
        """Read once, at the edge (the app factory, the Lambda module); bad values raise ``SettingError``."""
        settings = ServingSettings.read(env)
        return cls(
            model_root=settings.model_root,
            model_name=settings.model_name,
            variant=settings.variant,
            runtime=settings.runtime,
            workers=settings.workers,
            limits=settings.limits,
            batching=Batching(settings.batch_wait_ms, settings.batch_max_images),
            reload_check_seconds=settings.reload_check_seconds,
            model_cache=settings.model_cache,
        )

    @property
    def threads(self) -> int:
        return session_threads(self.workers)


def _fields(predictor: Predictor) -> dict[str, dict[str, str]]:
    return {logs.FIELDS: {"model": predictor.name, "model_version": predictor.version, "file": str(predictor.path)}}


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        return _identity_of(path.stat())
    except OSError:
        return None


def _identity_of(stat: os.stat_result) -> tuple[int, int, int]:
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

    def _load(self, path: Path) -> Predictor:
        config = self.config
        return Predictor.load(
            path,
            threads=config.threads,
            limits=config.limits,
            runtime=config.runtime,
            batching=config.batching,
            precision=precision_of(config.variant),
        )

    def path(self) -> Path:
        return resolve_model_path(self.config.model_root, self.config.model_name, self.config.variant)

    def reload(self, *, force: bool = False) -> bool:
        """Load the file if it changed; keep serving the old model, or the last good one, if it is bad."""
        with self._lock:
            path = self.path()
            identity = _identity(path)
            if not force and identity == self._identity:
                return False
            self._identity = identity
            try:
                predictor = self._load(path)
            except errors.ServingError as error:
                self.error = error.detail  # get() words it: "no model is loaded (<detail>)", once
                if self.predictor is None:
                    self.predictor = self._last_good(error.detail)
                else:
                    log.error("keeps serving %s: %s", self.predictor.path, error.message, extra=_fields(self.predictor))
                return False
            self.predictor, self.error = predictor, ""
            log.info("serving %s", path, extra=_fields(predictor))
        self._keep(path, identity)  # outside the lock: the copy of a large model must not hold up requests
        return True

    def _cached(self) -> Path | None:
        return self.config.model_cache / self.config.model_name if self.config.model_cache else None

    def _keep(self, path: Path, loaded: tuple[int, int, int] | None) -> None:
        """Copy the model that loaded to the cache (write-then-rename), unless it is there already. The
        copy is taken from the file as it was loaded (``loaded``: its identity before the load); a file
        replaced since is left to the next reload."""
        cache = self._cached()
        if cache is None or loaded is None:
            return
        target = cache / path.name
        try:
            with path.open("rb") as source:
                if _identity_of(os.fstat(source.fileno())) != loaded:
                    return
                kept = _identity(target)
                if kept is not None and kept[1:] == loaded[1:]:
                    return
                cache.mkdir(parents=True, exist_ok=True)
                partial = cache / f".{path.name}.{os.getpid()}.partial"
                with partial.open("wb") as copy:
                    shutil.copyfileobj(source, copy, 4 * 1024 * 1024)
                os.utime(partial, ns=(loaded[1], loaded[1]))  # the next check compares mtimes
            os.replace(partial, target)
            for other in cache.glob("*.onnx"):  # one model kept: the one that loaded last
                if other != target:
                    other.unlink(missing_ok=True)
        except OSError as error:
            log.warning(
                "cannot keep a copy of %s in %s (%s): a restart will not fall back to it",
                path,
                cache,
                error.strerror or error,
            )

    def _last_good(self, reason: str) -> Predictor | None:
        cache = self._cached()
        for kept in sorted(cache.glob("*.onnx")) if cache and cache.is_dir() else []:
            try:
                predictor = self._load(kept)
            except errors.ServingError as error:
                log.error("the kept copy %s does not load either: %s", kept, error.message)
                continue
            log.warning(
                "serving the last model that loaded, kept in %s, because %s", kept, reason, extra=_fields(predictor)
            )
            return predictor
        log.error("model not loaded: %s", reason)
        return None

    def get(self) -> Predictor:
        now = time.monotonic()
        if now - self._checked >= self.config.reload_check_seconds:
            self._checked = now
            self.reload()
        if self.predictor is None:
            raise errors.model_not_ready(self.error)
        return self.predictor

    def readiness(self) -> dict[str, str]:
        """What ``/ready`` answers on both front doors; a 503 while no model is loaded."""
        predictor = self.get()
        answer = Readiness(status="ready", model=predictor.name, model_version=predictor.version, problem=self.error)
        return answer.model_dump(exclude_none=True)
