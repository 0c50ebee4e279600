"""CPU settings for long torch jobs (mining, rendering) on a small machine."""
from __future__ import annotations

import ctypes


def steady_allocator() -> bool:
    """Keep freed memory in glibc's heap instead of unmapping every large tensor (Linux, glibc).

    By default glibc serves each allocation above its mmap threshold with a fresh mmap and
    returns it on free, so every step's activation tensors page-fault anew; raising the mmap and
    trim thresholds to 1 GiB keeps them (benchmarks/RESULTS_stimuli.md measures both). False
    where glibc is not there.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 2**30) and libc.mallopt(m_trim_threshold, 2**30))
