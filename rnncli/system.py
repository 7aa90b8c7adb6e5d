"""What this process may use of the machine: the cores that worker threads and processes are
sized to.

    usable_cores()   # 2 on a 2-core machine; 1 under `taskset -c 0`; 3 in a 2.5-CPU container

os.cpu_count() counts the machine's cores, not this process's: under an affinity mask
(taskset, a batch scheduler) or a container's CPU quota, that many workers would share
fewer cores and slow each other down.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cgroup_quota(path: Path = CGROUP_CPU_MAX) -> float | None:
    """The CPUs a container may use (cgroup v2 cpu.max: quota / period), None if unlimited."""
    try:
        quota, period = path.read_text().split()[:2]
        return round(int(quota) / int(period), 2)
    except (OSError, ValueError):  # no cgroup v2, or "max" (no quota)
        return None


def affinity_cores() -> int | None:
    """The cores this process may run on (its affinity mask), None where that is unknown."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return None


def usable_cores() -> int:
    """The cores this process can keep busy: its affinity mask, within the container's CPU
    quota (rounded up: a 2.5-CPU quota keeps 3 threads partly busy), at least 1."""
    cores = affinity_cores() or os.cpu_count() or 1
    quota = cgroup_quota()
    if quota:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)
