"""Resident memory of this process: now and at its peak (Linux; ``None`` elsewhere), for
``cnnzoo benchmark`` and the memory benchmarks; and the check that a request fits in the
memory the machine has free before it is allocated (:func:`check_fits_in_memory`)."""

from __future__ import annotations

import os

__all__ = ["available_bytes", "check_fits_in_memory", "peak_rss_bytes", "proc_status_bytes", "reset_peak_rss",
           "rss_bytes", "total_bytes"]


def total_bytes() -> int | None:
    """The machine's physical memory, or ``None`` where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_bytes() -> int | None:
    """Memory the machine can give without swapping (``MemAvailable``), or ``None`` where
    ``/proc/meminfo`` does not say."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def check_fits_in_memory(needed: int, what: str) -> None:
    """``MemoryError`` (one line: what, how much, how much is free) when ``needed`` bytes
    exceed the memory available now: a request no allocation could satisfy is refused
    before it starts, instead of being killed by the system half-way."""
    free = available_bytes()
    if free is not None and needed > free:
        raise MemoryError(f"not enough memory: {what} needs {needed / 2**30:.1f} GiB, and "
                          f"{free / 2**30:.1f} GiB are free; use a smaller size")


def proc_status_bytes(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in bytes.

    Not ``getrusage``'s ``ru_maxrss``: on Linux a child inherits its parent's high-water mark
    through fork and exec, which would hide the child's own peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> bool:
    """Start the peak (VmHWM) afresh from the current resident set (Linux >= 4.0); whether
    it could (a container may forbid it)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def rss_bytes() -> int | None:
    """The resident set now, or ``None`` where ``/proc`` does not say."""
    try:
        return proc_status_bytes("VmRSS")
    except (OSError, RuntimeError):
        return None


def peak_rss_bytes() -> int | None:
    """The peak resident set since the last :func:`reset_peak_rss` (or the start)."""
    try:
        return proc_status_bytes("VmHWM")
    except (OSError, RuntimeError):
        return None
