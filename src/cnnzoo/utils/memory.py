"""Resident memory of this process: now and at its peak (Linux; ``None`` elsewhere), for
``cnnzoo benchmark`` and the memory benchmarks."""

from __future__ import annotations

__all__ = ["peak_rss_bytes", "proc_status_bytes", "reset_peak_rss", "rss_bytes"]


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
