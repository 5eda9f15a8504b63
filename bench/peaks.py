"""The hardware's own peaks, from ``bench/peaks.c`` built here with gcc: the floors of ``bench.inference``.

A floor is the machine's, not a library's: a GEMM of the libraries under test only shows how far
they are from each other. The kernels use the widest instructions the CPU has (``-march=native``)
on every thread, and say which; a precision the CPU has no instruction for has no floor.

    python -m bench.peaks        # print this machine's peaks
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import timed

SOURCE = Path(__file__).with_name("peaks.c")
# about 10-60 ms of each kernel: long enough to time, short enough to repeat (an AMX instruction does 256-1024
# times a vector one's work, in 16 or more cycles)
ITERATIONS = {"vector": 2_000_000, "amx": 250_000}
# each kind's kernels, the vector one first: where the CPU has AMX the faster of the two is the peak
KERNELS = {
    "fp32_gflops": (("fp32_fma", "isa_fp32", "vector"),),
    "int8_gops": (("int8_dot", "isa_int8", "vector"), ("amx_int8_dot", "isa_amx_int8", "amx")),
    "bf16_gflops": (("bf16_dot", "isa_bf16", "vector"), ("amx_bf16_dot", "isa_amx_bf16", "amx")),
}

# the read kernels: one stream per thread, and several per thread taken in turn
READ_KERNELS = {"read_bytes": "avx2 loads", "read_bytes_streams": "avx2 loads, 8 streams a thread"}


@dataclass(frozen=True)
class Peak:
    """One kernel: a call that does ``work`` (FLOPs, integer ops or bytes), and the instructions it used."""

    call: Callable[[], object]
    work: float
    isa: str


class PeaksUnavailableError(RuntimeError):
    """No C compiler, or this source did not build here."""


@functools.cache
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
    for kernels in KERNELS.values():
        for name, isa, _ in kernels:
            getattr(lib, name).argtypes, getattr(lib, name).restype = [ctypes.c_long], ctypes.c_double
            getattr(lib, isa).restype = ctypes.c_char_p
    for name in READ_KERNELS:
        getattr(lib, name).argtypes, getattr(lib, name).restype = [ctypes.c_void_p, ctypes.c_size_t], ctypes.c_double
    return lib


def peaks(read_megabytes: int = 1024) -> dict[str, Peak]:
    """``fp32_gflops``, ``int8_gops``, ``bf16_gflops`` (where the CPU has it) and ``read_gbps``, each from
    the fastest of its kernels this CPU runs."""
    lib = library()
    found = {}
    for kind, kernels in KERNELS.items():
        candidates = []
        for name, isa, family in kernels:
            kernel, iterations = getattr(lib, name), ITERATIONS[family]
            work = kernel(1)  # the work of one iteration on every thread (0: not on this CPU), and a warm-up
            if work > 0:
                call = functools.partial(kernel, iterations)
                candidates.append(Peak(call, work * iterations, getattr(lib, isa)().decode()))
        if candidates:
            found[kind] = fastest(candidates)
    buffer = np.ones(read_megabytes * 1024 * 1024 // 4, dtype=np.float32)  # written: every page is mapped
    reads = [_reading(getattr(lib, name), buffer, isa) for name, isa in READ_KERNELS.items()]
    found["read_gbps"] = fastest(reads)
    return found


def _reading(kernel: Callable[[int, int], float], buffer: np.ndarray, isa: str) -> Peak:
    """A read of the whole ``buffer``; the call holds the buffer, so it lives as long as the peak."""
    pointer, count = buffer.ctypes.data, buffer.size
    work = kernel(pointer, count)  # the bytes it reads (a whole number of blocks), and a warm-up
    return Peak(lambda: (buffer, kernel(pointer, count))[1], work, isa)


def fastest(candidates: list[Peak], repeats: int = 3) -> Peak:
    """The candidate with the highest rate (work over its fastest call), not the most work per call."""
    return max(candidates, key=lambda peak: peak.work / min(timed(peak.call, repeats=repeats)))


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
