"""The C heap's handling of freed memory (glibc's `malloc_trim` and `mallopt`).

One job, the process's C heap: `release_free_heap`, called where a process has just freed
large temporaries that the next step will not reuse (between the stages of a live cycle), so
its resident memory is what it holds rather than what it once peaked at; `keep_heap`, the
opposite for a process that frees and reallocates the same few block sizes all the time (the
persistence pool's workers). Nothing on another C library.
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
    libc = _libc()
    if libc:
        libc.malloc_trim(0)


# glibc `mallopt` parameters (malloc.h) and the values `keep_heap` sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
KEEP_HEAP_MMAP = 4 << 20
KEEP_HEAP_TRIM = 8 << 20


def keep_heap() -> bool:
    """Let this process's C heap keep up to KEEP_HEAP_TRIM bytes of freed memory at its top
    instead of returning it to the kernel, and serve blocks up to KEEP_HEAP_MMAP bytes from
    the heap instead of mmap (glibc `mallopt`). Returns whether glibc took both settings
    (False on another C library, or where it refuses one).

    Why: a persistence worker allocates and frees a few 0.3-0.4 MiB temporaries per cloud (a
    distance matrix's squares, the landscapes' tents); glibc's defaults gave some back to
    the kernel and took them again, ~4 page faults per cloud; kept, none: ~2 % less worker
    CPU on the 48-host x 3-day replay (benchmarks/README.md, issue 16). Cost: each worker may
    hold KEEP_HEAP_TRIM more of freed memory, so one per CPU (`default_workers`): 16 MiB on
    2 CPUs, 512 MiB on 64. Fragmentation can hold more (freed blocks between live ones cannot
    be returned), as it can with glibc's defaults, whose thresholds grow by themselves to the
    largest block freed (up to 32 / 64 MiB): these fixed values cap that growth. Measured on
    600 real clouds x 5 passes: RSS 39 MB kept against 44 MB by default, minor page faults
    6-9 k against 28-29 k (helper-40's review, 2026-11-30)."""
    libc = _libc()
    if not libc:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, KEEP_HEAP_MMAP)) and \
        bool(libc.mallopt(_M_TRIM_THRESHOLD, KEEP_HEAP_TRIM))


def _libc() -> Any:
    """glibc, loaded once; False on another C library (musl, macOS)."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
            _LIBC.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        except (OSError, AttributeError):  # not glibc (musl, macOS)
            _LIBC = False
    return _LIBC
