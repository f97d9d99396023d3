"""How busy and how fast the host is, printed by benchmarks so their figures can be compared."""

from __future__ import annotations

import os
import time


def host_figures() -> str:
    """The load average and the time of a 10M-step Python loop: how busy and how fast this host is."""
    started = time.perf_counter()
    for _ in range(10_000_000):
        pass
    loop_s = time.perf_counter() - started
    one, five, _fifteen = os.getloadavg()
    return f"load average {one:.2f} (1 min) / {five:.2f} (5 min); 10M-step Python loop {loop_s:.2f} s"
