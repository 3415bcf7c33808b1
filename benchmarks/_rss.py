"""Resident-memory readings shared by the memory benchmarks (Linux only)."""

from __future__ import annotations


def proc_status_bytes(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in bytes.

    Not ``getrusage``'s ``ru_maxrss``: on Linux a child inherits its parent's high-water mark
    through fork and exec, which would hide the child's own peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> None:
    """Start the peak (VmHWM) afresh from the current resident set (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
