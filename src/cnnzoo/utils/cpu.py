"""What this CPU can do fast: native bf16 and int8 dot products, and a name for the machine.

PyTorch runs bfloat16 on any x86 CPU with AVX-512, but only CPUs with AVX512-BF16 or AMX
have instructions for it; elsewhere it is converted to float32 and back around every
operation, which is slower than float32 itself. The same holds for int8 and the VNNI / AMX
dot-product instructions that quantized runtimes use. The flags come from ``/proc/cpuinfo``
(Linux); where it is missing, every answer is the cautious one (no native support).
"""

from __future__ import annotations

import functools
import os
import platform

__all__ = ["cpu_flags", "cpu_name", "has_native_bf16", "has_native_int8", "machine_fingerprint"]

_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
_INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of the first CPU in ``/proc/cpuinfo`` (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name (``platform.processor()`` where ``/proc/cpuinfo`` is missing)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def has_native_bf16() -> bool:
    """Whether the CPU computes bfloat16 dot products in hardware (AVX512-BF16 or AMX)."""
    return bool(cpu_flags() & _BF16_FLAGS)


def has_native_int8() -> bool:
    """Whether the CPU has int8 dot-product instructions (VNNI or AMX), what int8 inference
    needs to beat float32 by a wide margin."""
    return bool(cpu_flags() & _INT8_FLAGS)


def machine_fingerprint(*libraries: str) -> str:
    """A short description of this machine that changes when a timing measured on it would:
    the CPU, its core count, and the versions of ``libraries`` (import names)."""
    versions = []
    for name in libraries:
        try:
            module = __import__(name)
        except ImportError:
            continue
        versions.append(f"{name} {getattr(module, '__version__', '?')}")
    return "; ".join([f"{cpu_name()} x{os.cpu_count() or 1}", *versions])
