"""Small helpers shared by the benchmark scripts (not a benchmark itself).

Every number is printed as one `name: value` line so the output greps and diffs cleanly.
Memory is the peak resident set size from getrusage (Linux reports KiB).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULT_TAG = "BENCH_RESULT "  # the worker's last stdout line: this tag + JSON


def peak_rss_mib(children: bool = False) -> float:
    """Peak RSS in MiB of this process (or of the largest waited-for child, children=True)."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    """Resident set size right now (from /proc), MiB; 0 where /proc is unavailable."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return 0.0


def report(name: str, value) -> None:
    if isinstance(value, float):
        value = f"{value:.4g}" if abs(value) < 1e-3 and value else f"{value:.3f}"
    print(f"{name}: {value}", flush=True)


def run_worker(script: str, args: list[str], extra: list[str] = (), timeout: float | None = None) -> tuple[dict, float]:
    """Run `python <script> [extra] --worker ...` in a fresh interpreter from the repo root.

    Keep the calling process small: on Linux a child's ru_maxrss starts from its parent's
    high-water mark (it is carried across fork/vfork + exec), so a big parent inflates it.

    Returns (the JSON dict the worker printed last, wall seconds of the subprocess). The
    worker's own stdout/stderr pass through except the result line; a failure raises.
    """
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, script, *extra, "--worker", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - t0
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG):])
        else:
            print(line)
    if proc.returncode != 0 or result is None:
        raise SystemExit(f"worker {script} {' '.join(args)} failed (exit code {proc.returncode})")
    return result, wall


def emit_result(result: dict) -> None:
    """Worker side: print the result line (with this process's own peak RSS added)."""
    result = {**result, "peak_rss_mib": peak_rss_mib()}
    print(RESULT_TAG + json.dumps(result), flush=True)
