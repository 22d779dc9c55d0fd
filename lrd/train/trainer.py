"""The training loop shared by every model: Adam, early stopping on dev NDCG@5, best-dev
checkpoint, test once at the best epoch."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from lrd.errors import ModelError
from lrd.evaluate import ranking_metrics, ranks_from_scores
from lrd.io import atomic_path
from lrd.train.data import TrainingData

log = logging.getLogger(__name__)


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


@dataclasses.dataclass
class FitSettings:
    lr: float
    l2: float
    batch_size: int
    max_epochs: int
    patience: int
    eval_users: int
    use_kg: bool
    use_lrd: bool
    amp: torch.dtype | None = None
    device: torch.device = torch.device("cpu")


@dataclasses.dataclass
class FitResult:
    best_epoch: int
    epochs: int
    dev: dict[str, float]
    test: dict[str, float]
    dev_ranks: np.ndarray
    test_ranks: np.ndarray
    curve: list[dict]
    train_seconds: float
    eval_seconds: float
    seconds_per_epoch: float
    test_full: dict[str, float] | None = None  # ranking over all items, when asked for


def optimizer_for(model: nn.Module, lr: float, l2: float) -> torch.optim.Optimizer:
    """Adam with L2 on every weight except biases (the item bias table included), as the reference."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if "bias" in name else decay).append(p)
    return torch.optim.Adam([{"params": decay, "weight_decay": l2}, {"params": no_decay, "weight_decay": 0.0}], lr=lr)


@torch.inference_mode()
def evaluate_ranks(model: nn.Module, data: TrainingData, split: str, s: FitSettings) -> np.ndarray:
    model.eval()
    ranks = np.empty(len(data.eval[split].users), dtype=np.int32)
    with autocast(s.device, s.amp):
        for batch, sl in data.eval_batches(split, s.eval_users):
            ranks[sl] = ranks_from_scores(model.scores(batch.to(s.device))).cpu().numpy()
    return ranks


@torch.inference_mode()
def full_ranks(model: nn.Module, data: TrainingData, split: str, s: FitSettings, item_chunk: int = 2048) -> np.ndarray:
    """Rank of each held-out item among all items, leaving out those the user had before it.

    The second protocol beside the 100 stored candidates. Items are scored in chunks, so
    memory stays bounded whatever the catalog size; ties count against the held-out item.
    """
    model.eval()
    seqs, n_items = data.seqs, data.seqs.n_items
    ev = data.eval[split]
    ranks = np.empty(len(ev.users), dtype=np.int64)
    with autocast(s.device, s.amp):
        for batch, sl in data.eval_batches(split, s.eval_users):
            batch = batch.to(s.device)
            positions, targets = ev.positions[sl], ev.candidates[sl, 0]
            b = len(positions)
            earlier, _ = seqs.history(positions, int((positions - seqs.start[positions]).max()))
            seen = np.zeros((b, n_items + 1), dtype=bool)  # earlier items of each user, and the target
            seen[np.arange(b)[:, None], earlier] = True  # padding marks column 0, which is never scored
            seen[np.arange(b), targets] = True
            seen = torch.from_numpy(seen).to(s.device)
            target_score = model.scores(dataclasses.replace(batch, candidates=batch.candidates[:, :1]))
            beaten = torch.zeros(b, dtype=torch.long, device=s.device)
            for lo in range(1, n_items + 1, item_chunk):
                items = torch.arange(lo, min(lo + item_chunk, n_items + 1), device=s.device)
                scores = model.scores(dataclasses.replace(batch, candidates=items.expand(b, -1)))
                beaten += ((scores >= target_score) & ~seen[:, items]).sum(1)
            ranks[sl] = (1 + beaten).cpu().numpy()
    return ranks


def fit(
    model: nn.Module,
    data: TrainingData,
    s: FitSettings,
    seed: int,
    checkpoint: Path,
    on_epoch: Callable[[dict], None] | None = None,
    label: str = "",
) -> FitResult:
    rng = np.random.default_rng(seed)
    opt = optimizer_for(model, s.lr, s.l2)
    best, best_epoch, best_state = -1.0, 0, None
    curve: list[dict] = []
    train_seconds = eval_seconds = 0.0
    n_batches = -(-data.n_train // s.batch_size)
    for epoch in range(1, s.max_epochs + 1):
        model.train()
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        bar = tqdm(data.epoch(rng, s.batch_size, s.use_kg, s.use_lrd), total=n_batches, desc=f"{label} epoch {epoch}", leave=False, disable=None, unit="batch")
        for step, batch in enumerate(bar, start=1):
            with autocast(s.device, s.amp):
                losses = model.losses(batch.to(s.device))
            loss = losses["loss"]
            if not torch.isfinite(loss):
                where = f"at epoch {epoch}, step {step}"
                kept = f"the best checkpoint (epoch {best_epoch}) is kept at {checkpoint}" if best_state else "no checkpoint was saved yet"
                raise ModelError(f"{label}: the loss became {loss.item()} {where}; {kept}. Lower the learning rate or use precision fp32.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        train_seconds += time.perf_counter() - t0
        t1 = time.perf_counter()
        dev = ranking_metrics(evaluate_ranks(model, data, "dev", s))
        eval_seconds += time.perf_counter() - t1
        row = {"epoch": epoch, **{k: v / n_batches for k, v in sums.items()}, **{f"dev_{k}": v for k, v in dev.items()},
               "seconds": round(time.perf_counter() - t0, 2)}
        curve.append(row)
        if on_epoch:
            on_epoch(row)
        improved = dev["NDCG@5"] > best
        log.info(
            "%s epoch %d: loss %.4f%s | dev NDCG@5 %.4f HR@5 %.4f%s [%.1f s]",
            label, epoch, row["loss"],
            "".join(f", {k} {row[k]:.4f}" for k in ("rec", "kg", "lrd") if k in row),
            dev["NDCG@5"], dev["HR@5"], " *" if improved else "", row["seconds"],
        )
        if improved:
            best, best_epoch = dev["NDCG@5"], epoch
            best_state = copy.deepcopy(model.state_dict())
            with atomic_path(checkpoint) as tmp:
                torch.save(best_state, tmp)
        elif epoch - best_epoch >= s.patience:
            log.info("%s: no dev improvement for %d epochs; stopping (best epoch %d)", label, s.patience, best_epoch)
            break
    model.load_state_dict(best_state)
    t2 = time.perf_counter()
    dev_ranks = evaluate_ranks(model, data, "dev", s)
    test_ranks = evaluate_ranks(model, data, "test", s)
    eval_seconds += time.perf_counter() - t2
    return FitResult(
        best_epoch=best_epoch,
        epochs=len(curve),
        dev=ranking_metrics(dev_ranks),
        test=ranking_metrics(test_ranks),
        dev_ranks=dev_ranks,
        test_ranks=test_ranks,
        curve=curve,
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        seconds_per_epoch=train_seconds / max(len(curve), 1),
    )
