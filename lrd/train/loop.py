"""The one training loop, shared by `discover` and `train`: Adam steps over an epoch's batches,
an evaluation, a stopping rule, the best weights kept; optionally a checkpoint after every
epoch from which a killed run resumes exactly where it stopped."""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from lrd.errors import ModelError
from lrd.models.batch import Batch
from lrd.train.device import autocast
from lrd.train.stopping import StoppingRule

log = logging.getLogger(__name__)


def optimizer_for(model: nn.Module, lr: float, l2: float) -> torch.optim.Optimizer:
    """Adam with L2 on every weight except biases (the item bias table included), as the reference."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if "bias" in name else decay).append(p)
    return torch.optim.Adam([{"params": decay, "weight_decay": l2}, {"params": no_decay, "weight_decay": 0.0}], lr=lr)


@dataclasses.dataclass
class LoopState:
    """Everything that decides the rest of a run; saved after each epoch to resume from."""

    rng: np.random.Generator
    stopper: StoppingRule
    curve: list[dict] = dataclasses.field(default_factory=list)
    best_state: dict | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    stopped: bool = False

    @property
    def epoch(self) -> int:
        return len(self.curve)


@dataclasses.dataclass
class Loop:
    """One run's settings. `batches(rng)` yields an epoch's training batches; `evaluate()` returns
    this epoch's metrics (their names as in the curve); `monitor` names the one the stopping rule
    watches."""

    batches: Callable[[np.random.Generator], Iterator[Batch]]
    n_batches: int
    evaluate: Callable[[], dict[str, float]]
    monitor: str
    max_epochs: int
    amp: torch.dtype | None = None
    device: torch.device = torch.device("cpu")
    label: str = ""
    loss_prefix: str = ""  # curve column prefix of the training losses
    on_improve: Callable[[dict], None] | None = None  # called with the new best weights
    on_epoch: Callable[[LoopState], None] | None = None  # e.g. save a resumable checkpoint
    # Several processes (lrd.train.distributed): the losses through DDP, the epoch's loss sums
    # added up over the ranks, one progress bar. None: the model's losses, this process's sums.
    losses: Callable[[Batch], dict[str, torch.Tensor]] | None = None
    reduce: Callable[[dict[str, float]], dict[str, float]] | None = None
    progress: bool = True


def fit(model: nn.Module, opt: torch.optim.Optimizer, loop: Loop, state: LoopState) -> LoopState:
    """Train until the stopping rule or max_epochs says stop; the model ends with the best weights."""
    while not state.stopped and state.epoch < loop.max_epochs:
        epoch = state.epoch + 1
        model.train()
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        bar = tqdm(loop.batches(state.rng), total=loop.n_batches, desc=f"{loop.label} epoch {epoch}", leave=False,
                   disable=None if loop.progress else True, unit="batch")
        for step, batch in enumerate(bar, start=1):
            with autocast(loop.device, loop.amp):
                losses = (loop.losses or model.losses)(batch.to(loop.device))
            loss = losses["loss"]
            if not torch.isfinite(loss):
                kept = f"the best weights are those of epoch {state.stopper.best_epoch}" if state.best_state else "no epoch finished yet"
                raise ModelError(f"{loop.label}: the loss became {loss.item()} at epoch {epoch}, step {step}; {kept}. "
                                 "Lower the learning rate or use precision fp32.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        if loop.reduce:
            sums = loop.reduce(sums)
        train_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        metrics = loop.evaluate()
        state.train_seconds += train_seconds
        state.eval_seconds += time.perf_counter() - t1
        row = {"epoch": epoch, **{f"{loop.loss_prefix}{k}": v / loop.n_batches for k, v in sums.items()}, **metrics,
               "seconds": round(time.perf_counter() - t0, 2)}
        state.curve.append(row)
        improved = state.stopper.update(metrics[loop.monitor])
        log.info("%s epoch %d/%d: %s%s [%.1f s; %s]", loop.label, epoch, loop.max_epochs, _describe(row, loop.monitor), " *" if improved else "",
                 row["seconds"], _eta(state, loop))
        if improved:
            state.best_state = copy.deepcopy(model.state_dict())
            if loop.on_improve:
                loop.on_improve(state.best_state)
        if state.stopper.should_stop():
            log.info("%s: stopping after epoch %d (%s); best epoch %d", loop.label, epoch, state.stopper.reason(), state.stopper.best_epoch)
            state.stopped = True
        if loop.on_epoch:
            loop.on_epoch(state)
    model.load_state_dict(state.best_state)
    return state


def _eta(state: LoopState, loop: Loop) -> str:
    """How long the rest of the run takes at this run's pace, if the monitored value no longer improves."""
    last = min(state.stopper.last_epoch(), loop.max_epochs)
    left = max(last - state.epoch, 0)
    if not left:
        return "done"
    seconds = left * (state.train_seconds + state.eval_seconds) / max(state.epoch, 1)
    minutes = seconds / 60
    when = f"{minutes / 60:.1f} h" if minutes >= 90 else f"{minutes:.0f} min" if minutes >= 1 else f"{seconds:.0f} s"
    extra = "" if last == loop.max_epochs else f" unless {loop.monitor} improves"
    return f"ends by epoch {last}{extra}: {when} left"


def _describe(row: dict, monitor: str) -> str:
    """The losses and the monitored metric of an epoch's row, for the log."""
    shown = [k for k in row if k.endswith("loss") or k in ("rec", "kg", "lrd")] + [monitor, "dev_HR@5"]
    return ", ".join(f"{k} {row[k]:.4f}" for k in dict.fromkeys(shown) if k in row)
