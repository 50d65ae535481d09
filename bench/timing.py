"""Timing helpers the benchmarks share: run a call a few times, print its median and max."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(run: Callable[[], object], runs: int, before: Callable[[], None] | None = None) -> list[float]:
    """Seconds each of `runs` calls took; `before` runs ahead of each, untimed."""
    found = []
    for _ in range(runs):
        if before is not None:
            before()
        started = time.perf_counter()
        run()
        found.append(time.perf_counter() - started)
    return found


def show(name: str, seconds: list[float]) -> float:
    """Print `name  median … ms  max … ms`; return the median."""
    median = statistics.median(seconds)
    print(f"{name:<46} median {median * 1000:8.1f} ms   max {max(seconds) * 1000:8.1f} ms")
    return median
