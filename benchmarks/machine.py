"""The machine kind in result file names: ``benchmarks/results/<benchmark>_<kind>.json``.

Figures depend on the CPU's instruction set far more than on anything else about the machine (on
a CPU with native bf16 the default run trains in bf16; elsewhere in float32), so
``benchmarks/results/`` keeps one current file per benchmark and machine kind; history is in git.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

#: /proc/cpuinfo flags of native bf16 arithmetic (what ``training.bf16: auto`` looks for).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (empty where ``/proc/cpuinfo`` does not exist, e.g. macOS)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def machine_kind(flags: frozenset[str] | None = None) -> str:
    """``avx512bf16`` (native bf16), ``avx2``, or the architecture's name (``arm64``, ...)."""
    flags = cpu_flags() if flags is None else flags
    if flags & BF16_FLAGS:
        return "avx512bf16"
    if "avx2" in flags:
        return "avx2"
    return platform.machine().lower() or "unknown"


def results_path(benchmark: str, suffix: str = ".json") -> Path:
    """Default output of ``benchmark`` on this machine: ``results/<benchmark>_<kind><suffix>``."""
    return RESULTS / f"{benchmark}_{machine_kind()}{suffix}"


def gpu_kind(name: str) -> str:
    """A GPU's kind: the first word of its name with a digit (``NVIDIA H100 80GB`` -> ``h100``)."""
    words = [w.lower() for w in re.findall(r"[A-Za-z0-9]+", name) if w.lower() != "nvidia"]
    return next((w for w in words if any(c.isdigit() for c in w)), "-".join(words) or "gpu")
