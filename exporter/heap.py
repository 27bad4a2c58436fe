"""Give the C heap's free pages back to the operating system (glibc's `malloc_trim`).

One job: `release_free_heap`, called where a process has just freed large temporaries that
the next step will not reuse (between the stages of a live cycle), so its resident memory is
what it holds rather than what it once peaked at.
"""

from __future__ import annotations

from typing import Any

_LIBC: Any = None  # glibc, loaded on first use; False elsewhere


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the OS: glibc's `malloc_trim(0)` (every arena);
    nothing on another C library.

    glibc keeps freed blocks below its (adaptive, up to 32 MiB) mmap threshold in its heaps,
    where a later stage's different block sizes often cannot reuse them: a live cycle at
    10 000 entities left ~100 MiB of freed pages resident under the next stage's peak
    (benchmarks/README.md, issue 16). Dask's workers call the same function for the same
    reason ("Memory not released back to the OS", distributed's worker-memory docs). Costs
    a few milliseconds: called between the stages of a live cycle, not per replay batch. (In
    the persistence pool's workers, after each task, it changed nothing: measured.)"""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):  # not glibc (musl, macOS)
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)
