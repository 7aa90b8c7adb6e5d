"""Run a command; print its wall seconds, CPU seconds (user + system) and peak resident
memory as one JSON line. The command's stdout is dropped, its stderr passed on.

    python tools/peak_rss.py rnncli predict --file reviews.txt --output out.jsonl
    {"wall": 4.1, "cpu": 7.9, "rss_mb": 247.3, "returncode": 0}

Measure from this small process, not from a large one: on Linux a child's ru_maxrss
starts at its parent's resident size (exec keeps the old address space's high-water
mark), so a test or benchmark process holding gigabytes would report them for every
command it starts. The figure covers the command's own child processes too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main() -> int:
    if len(sys.argv) < 2:
        sys.exit("usage: python tools/peak_rss.py COMMAND [ARGS...]")
    started = time.perf_counter()
    proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    print(json.dumps({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                      "rss_mb": usage.ru_maxrss / 1024, "returncode": code}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
