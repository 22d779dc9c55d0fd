"""What every stage entry point shares: logging, params, timing and clean errors."""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import time
from typing import Callable

from lrd.config.base import load_params
from lrd.errors import LRDError


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("sentence_transformers", "transformers", "faiss", "filelock", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_stage(name: str, fn: Callable[[dict], None], params_path: str = "params.yaml") -> None:
    """Run `fn(params)` as stage `name`; an LRDError becomes one line on stderr and exit 1."""
    setup_logging(verbose=bool(os.environ.get("LRD_DEBUG")))
    # `kill` (and DVC cancelling a run) sends SIGTERM: unwind like Ctrl-C so that temporary
    # outputs are removed and earlier outputs stay in place.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    log = logging.getLogger(f"lrd.{name}")
    start = time.perf_counter()
    try:
        fn(load_params(params_path))
    except LRDError as exc:
        log.error("%s failed: %s", name, exc)
        sys.exit(1)
    except KeyboardInterrupt:
        log.error("%s interrupted; earlier outputs are left as they were", name)
        sys.exit(130)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            log.error("%s failed: cannot write %s (%s); earlier outputs are left as they were. Make that folder writable "
                      "(`chmod -R u+w`) and run again", name, exc.filename or "an output", exc.strerror)
            sys.exit(1)
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        log.error("%s failed: the disk is full (%s%s); earlier outputs are left as they were. Free some space "
                  "(`dvc gc` removes cached versions no stage uses) and run again", name, exc.strerror, f": {exc.filename}" if exc.filename else "")
        sys.exit(1)
    log.info("%s done in %.1f s", name, time.perf_counter() - start)


def parse_run_args(argv: list[str], stage: str) -> tuple[str, str, int]:
    """<dataset> <model> <seed> from a training stage's command line."""
    if len(argv) != 4 or not argv[3].lstrip("-").isdigit():
        sys.exit(f"usage: stages/run {stage} <dataset> <model> <seed>   (names from params.yaml `datasets` and `models`)")
    return argv[1], argv[2], int(argv[3])
