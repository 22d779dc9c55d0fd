"""Where and in what precision training runs, and how it is seeded."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast where the hardware does bf16 matmuls natively; None means fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else None


def seed_torch(seed: int, device: torch.device) -> None:
    """Seed torch and, on CPU, make every kernel deterministic.

    The default CPU backward of advanced indexing (`table[ids]`) accumulates in an order that
    depends on thread scheduling: two runs drift apart in the last bits after a few batches of
    ML-100K. The deterministic kernels cost about 3% of an epoch. CUDA is left alone: its
    deterministic mode needs CUBLAS_WORKSPACE_CONFIG and refuses some ops.
    """
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(device.type == "cpu")


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
