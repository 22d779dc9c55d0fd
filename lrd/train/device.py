"""Where and in what precision training runs, and how it is seeded."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import torch
from torch import nn

from lrd.models import native
from lrd.models.blocks import ChannelSelfAttention


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


@contextlib.contextmanager
def denormals_flushed(device: torch.device):
    """On a CPU, compute denormal floats (below 1.2e-38) as zero (FTZ/DAZ) inside the block.

    Trained KDA weights produce them (decayed attention weights, tiny gradients), and x86 cores
    take a microcode assist on every operation that touches one: measured on Office KDA, dev
    ranking with the weights of epoch 19 ran 1.4x faster with them flushed (docs/performance.md).
    The values flushed are 1e-38 and below, far under the float noise of any result. The setting
    is the whole process's (the CPU's), so it is undone at the end of the block.
    """
    if device.type != "cpu":
        yield
        return
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def compiles(setting: str, device: torch.device) -> bool:
    """Whether `train.compile` = setting compiles the relational models on this device: "auto"
    where a C++ compiler (CPU) or Triton (GPU) is found, "inductor" always, "none" never."""
    if setting == "auto":
        return _compiler_available(device)
    return setting == "inductor"


def compile_model(model: nn.Module, backend: str = "inductor") -> None:
    """Replace the model's `losses` and `scores` by torch.compile'd versions (inductor; the tests
    also use "aot_eager": the same traced arithmetic run by eager kernels, without compiling C++).

    Same arithmetic in another order: scores equal to the eager ones within float noise
    (tests/test_fast_paths.py). The first batch of each shape pays the compilation (10-60 s,
    cached on disk across runs); batches are always history_max wide, so shapes are few.
    """
    # One graph per batch shape: a training run sees two (full batches and the last one), an
    # evaluation one per call size; without this, the second shape would turn every later
    # call into slower shape-generic code.
    torch._dynamo.config.automatic_dynamic_shapes = False
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 16)
    if backend == "inductor" and all(p.device.type == "cpu" for p in model.parameters()) and native.available():
        for m in model.modules():
            if isinstance(m, ChannelSelfAttention):
                m.native = True  # scoring without gradients: lrd.models.native's kernel
    model.losses = torch.compile(model.losses, backend=backend)
    model.scores = torch.compile(model.scores, backend=backend)


def _compiler_available(device: torch.device) -> bool:
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
        return True
    return device.type == "cpu" and any(shutil.which(cc) for cc in ("g++", "c++", "clang++"))


def cpu_model() -> str:
    """The CPU's model name, as lscpu shows it ("" where /proc/cpuinfo does not say)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
