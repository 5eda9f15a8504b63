"""How a serving process shares out the machine's cores: gunicorn workers x threads, and each
worker's onnxruntime threads. Standard library only: ``gunicorn_conf.py`` imports it in the
arbiter, which must never import onnxruntime (a worker forked after that import hangs or aborts
when it exits).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_THREADS = 2  # gunicorn threads per worker: decoding one request overlaps another's session run


def available_cpus() -> int:
    """CPUs this process may really use: affinity, and a cgroup v2 quota where one is set."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def default_workers() -> int:
    """Two cores per gunicorn worker: onnxruntime already spreads one request over its cores."""
    return max(1, available_cpus() // 2)


def session_threads(workers: int) -> int:
    """onnxruntime intra-op threads for each of ``workers`` processes: the cores shared out."""
    return max(1, available_cpus() // max(1, workers))
