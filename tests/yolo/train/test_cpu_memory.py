"""``retain_freed_memory``: a freed large buffer is reused without new page faults (glibc)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# The probe imports the trainer first, as the training process that calls retain_freed_memory
# has (the library's package no longer imports it eagerly): in a bare `import torch` process glibc's
# heap is laid out differently and the reuse is not what a training step sees.
PROBE = """
import resource, sys, torch
import yolo_mlops.yolo.train.trainer
from yolo_mlops.yolo.train.cpu_memory import retain_freed_memory
applied = retain_freed_memory() if sys.argv[1] == "on" else False
for _ in range(3):  # warm-up: 64 MiB allocated, touched and freed (the heap settles)
    torch.empty(16 * 2**20).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    torch.empty(16 * 2**20).fill_(1.0)  # the same size again, as a training step does
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(setting: str) -> tuple[bool, int]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, setting], capture_output=True, text=True, check=True
    )
    applied, count = done.stdout.split()
    return applied == "True", int(count)


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_freed_buffers_are_reused_without_page_faults():
    _, default_faults = faults("off")
    applied, kept_faults = faults("on")
    assert applied
    pages = 5 * 64 * 2**20 // 4096
    assert default_faults > pages // 2  # glibc maps and zeroes the buffer again each time
    assert kept_faults <= pages // 4  # reused: next to no first touches
