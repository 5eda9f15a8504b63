"""The hardware's own peaks, from ``bench/peaks.c`` built here with gcc: the floors of ``bench.inference``.

A floor is the machine's, not a library's: a GEMM of the libraries under test only shows how far
they are from each other. The kernels use the widest instructions the CPU has (``-march=native``)
on every thread, and say which; a precision the CPU has no instruction for has no floor.

    python -m bench.peaks        # print this machine's peaks
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from bench.common import timed

SOURCE = Path(__file__).with_name("peaks.c")
ITERATIONS = 2_000_000  # about 10-50 ms of each kernel: long enough to time, short enough to repeat


@dataclass(frozen=True)
class Peak:
    """One kernel: a call that does ``work`` (FLOPs, integer ops or bytes), and the instructions it used."""

    call: Callable[[], object]
    work: float
    isa: str


class PeaksUnavailableError(RuntimeError):
    """No C compiler, or this source did not build here."""


@cache
def library() -> ctypes.CDLL:
    """``peaks.c`` built once per source version into the temporary folder, and loaded."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise PeaksUnavailableError("no gcc or cc on PATH: the native peak floors need a C compiler")
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    built = Path(tempfile.gettempdir()) / f"mhist-peaks-{digest}.so"
    if not built.is_file():
        partial = built.with_suffix(".partial.so")
        command = [compiler, "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-o", str(partial), str(SOURCE)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PeaksUnavailableError(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
        partial.replace(built)
    lib = ctypes.CDLL(str(built))
    for name in ("fp32_fma", "int8_dot", "bf16_dot"):
        getattr(lib, name).argtypes, getattr(lib, name).restype = [ctypes.c_long], ctypes.c_double
    lib.read_bytes.argtypes, lib.read_bytes.restype = [ctypes.c_void_p, ctypes.c_size_t], ctypes.c_double
    for name in ("isa_fp32", "isa_int8", "isa_bf16"):
        getattr(lib, name).restype = ctypes.c_char_p
    return lib


def peaks(read_megabytes: int = 1024) -> dict[str, Peak]:
    """``fp32_gflops``, ``int8_gops``, ``bf16_gflops`` (where the CPU has it) and ``read_gbps``."""
    lib = library()
    found = {}
    for kind, kernel, isa in (
        ("fp32_gflops", lib.fp32_fma, lib.isa_fp32),
        ("int8_gops", lib.int8_dot, lib.isa_int8),
        ("bf16_gflops", lib.bf16_dot, lib.isa_bf16),
    ):
        work = kernel(1)  # the work of one iteration on every thread, and a warm-up
        if work > 0:
            found[kind] = Peak(lambda kernel=kernel: kernel(ITERATIONS), work * ITERATIONS, isa().decode())
    buffer = np.ones(read_megabytes * 1024 * 1024 // 4, dtype=np.float32)  # written: every page is mapped
    pointer, count = buffer.ctypes.data, buffer.size
    found["read_gbps"] = Peak(lambda: (buffer, lib.read_bytes(pointer, count))[1], float(count * 4), "avx2 loads")
    return found


def rates(found: dict[str, Peak], repeats: int = 8) -> dict[str, dict[str, float | str]]:
    """Each peak's rate (giga-work per second) from its fastest call, and its instructions."""
    return {
        kind: {"rate": peak.work / min(timed(peak.call, repeats=repeats)) / 1e9, "isa": peak.isa}
        for kind, peak in found.items()
    }


def main() -> None:
    print(json.dumps({"threads": library().threads(), **rates(peaks())}, indent=2))


if __name__ == "__main__":
    main()
