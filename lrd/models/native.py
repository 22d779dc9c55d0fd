"""The channel block's scoring kernel (channel_block.cpp), built with the machine's C++ compiler.

Built once per machine on first use (~30 s; torch's extension cache, keyed by the source and
the CPU's flags, keeps it across runs) and registered as the torch op `lrd::channel_block`, so
that a torch.compile'd `scores` calls it like any other op. Where it cannot be built (no compiler,
no ninja) `available()` says False and the models score with the plain block.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("channel_block.cpp")
MAX_CHANNELS, HEAD_VALUES = 64, 16


def supports(channels: int, d: int, heads: int) -> bool:
    """The shapes the kernel handles: 16 values per head (d = 64, 4 heads: the paper's) and at most 64 channels."""
    return heads * HEAD_VALUES == d and 1 <= channels <= MAX_CHANNELS


@functools.cache
def available() -> bool:
    """Build and load the kernel once per process; False (and one warning) where that fails."""
    venv_bin = str(Path(sys.executable).parent)  # the ninja that pyproject.toml installs, on PATH or not
    if shutil.which("ninja") is None and shutil.which("ninja", path=venv_bin):
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    if not (shutil.which("ninja") and any(shutil.which(cc) for cc in ("c++", "g++", "clang++"))):
        return False
    try:
        from torch.utils import cpp_extension

        # -march=native: the build is this CPU's, so the flags name it (a shared cache may see several CPUs).
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
        tag = hashlib.sha256(SOURCE.read_bytes() + flags.encode()).hexdigest()[:12]
        name = f"lrd_channel_block_{tag}"
        _clear_stale_lock(Path(cpp_extension._get_build_directory(name, False)))
        cpp_extension.load(name=name, sources=[str(SOURCE)], extra_cflags=["-O3", "-march=native"],
                           is_python_module=False, verbose=False)
    except Exception as e:  # a failed build only costs speed
        log.warning("scoring without the native channel kernel (its build failed: %s)", str(e).splitlines()[0] if str(e) else e)
        return False
    torch.library.register_fake("lrd::channel_block")(_shape_of_result)
    return True


def _clear_stale_lock(build: Path, seconds: float = 600) -> None:
    """torch waits forever on the lock file of a build whose process was killed; a build takes ~15 s."""
    lock = build / "lock"
    try:
        if time.time() - lock.stat().st_mtime > seconds:
            lock.unlink()
    except FileNotFoundError:
        pass


def _shape_of_result(x, wqkv, w1, b1, w2, b2, g, beta, heads, layers, eps):
    return torch.empty_like(x)


def channel_block(x: torch.Tensor, weights: tuple, heads: int, layers: int, eps: float) -> torch.Tensor:
    """The block's forward pass (no gradients): x N x R x d float32 on the CPU; weights as ChannelSelfAttention passes them."""
    return torch.ops.lrd.channel_block(x, *weights, heads, layers, eps)
