"""The allocator settings that `dynarep` runs under, in fresh processes (they act at start-up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dynarep.runtime import JEMALLOC_CONF, find_jemalloc

# Frees blocks of varying sizes (as a training step or an episode does), then releases them; prints
# resident memory (MB) after freeing and after releasing, and whether the allocator said it released.
FREE_THEN_RELEASE = """
import json, numpy as np
from dynarep.runtime import allocator, release_free_memory, resident_memory_mb, tune_allocator
tune_allocator()  # dynarep's glibc settings (no mmap, no trimming); nothing under jemalloc
blocks = [np.ones(int(2**20 * (1 + i % 7) * 1.3) // 8) for i in range(120)]
del blocks
freed = resident_memory_mb()
released = release_free_memory()
print(json.dumps({"allocator": allocator(), "freed": freed, "after": resident_memory_mb(), "released": released}))
"""


def run_snippet(env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", FREE_THEN_RELEASE], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(find_jemalloc() is None, reason="libjemalloc is not installed (scripts/setup.sh installs it)")
def test_jemalloc_keeps_freed_pages_until_released():
    r = run_snippet({"LD_PRELOAD": find_jemalloc(), "MALLOC_CONF": JEMALLOC_CONF})
    assert r["allocator"] == "jemalloc" and r["released"]
    # about 640 MB were freed: dynarep's tuning keeps them resident (no purging), the release returns them
    assert r["freed"] - r["after"] > 400, r


def test_tuned_glibc_keeps_freed_pages_until_released():
    r = run_snippet({"DYNAREP_ALLOCATOR": "glibc", "LD_PRELOAD": ""})
    assert r["allocator"] == "glibc" and r["released"]
    assert r["freed"] - r["after"] > 400, r  # glibc tuned never trims by itself
