"""Training on several processes: DDP under torchrun (gloo on CPU, NCCL on GPUs).

What makes N ranks compute what one process computes:
- every rank makes each epoch's random draws exactly as one process does and takes its share
  of every batch (`TrainingData.epoch(part=...)`); the losses divide by the whole batch's
  counts (`Batch.share`), so the ranks' gradients *summed* are the one-process gradient of the
  batch (DDP averages; `_allreduce_sum` replaces that);
- evaluation scores every world-th batch of users on each rank and sums the ranks' parts;
- the resume point and the best weights are written by rank 0 and read by every rank.

`Ranks()` (world 1) is the one-process run: none of the above touches it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import re
import sys
from typing import Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lrd.config.base import load_params
from lrd.config.train import TrainConfig
from lrd.errors import ConfigError, DistributedError, LRDError
from lrd.models.batch import Batch

log = logging.getLogger(__name__)


def launched() -> bool:
    """Started by torchrun (which sets these for each rank)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def torchrun_argv(processes: int, module: str, args: list[str]) -> list[str]:
    """The command running `python -m module args` as `processes` ranks on this machine."""
    return [sys.executable, "-m", "lrd.train.launch", "--standalone", f"--nproc-per-node={processes}", "-m", module, *args]


def become_torchrun(module: str, args: list[str], params_path: str = "params.yaml") -> None:
    """With `train.distributed: ddp` in a process torchrun did not start (stages/run, so DVC):
    become torchrun running `python -m module args` as `train.processes` ranks (a signal to it
    reaches every rank). A params.yaml that does not load is left for the stage to report."""
    try:
        cfg = TrainConfig.from_params(load_params(params_path))
    except LRDError:
        return
    if cfg.distributed == "ddp" and not launched():
        os.execv(sys.executable, torchrun_argv(cfg.processes, module, args))


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1
    device: torch.device | None = None  # this rank's device (None: one process, which picks its own)

    @property
    def main(self) -> bool:
        """The rank that logs and writes the files."""
        return self.rank == 0

    @property
    def part(self) -> tuple[int, int]:
        return self.rank, self.world

    def losses(self, model: nn.Module) -> Callable[[Batch], dict[str, torch.Tensor]]:
        """`model.losses`; under DDP through DistributedDataParallel, which syncs gradients only
        for what goes through its forward()."""
        if self.world == 1:
            return model.losses
        # The buffers (item text vectors, lookup tables) never change: no need to send them each step.
        ddp = DistributedDataParallel(_Losses(model), forward_sync_buffers=False)
        ddp.register_comm_hook(None, _allreduce_sum)
        return ddp

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """Each value summed over the ranks (every rank passes the same keys)."""
        if self.world == 1:
            return values
        t = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return dict(zip(values, t.tolist()))

    def gather(self, part: np.ndarray) -> np.ndarray:
        """The whole array on every rank, from each rank's array holding its part and zeros elsewhere."""
        if self.world == 1:
            return part
        t = torch.from_numpy(part.astype(np.int64)).to(self.device)
        dist.all_reduce(t)
        return t.cpu().numpy().astype(part.dtype)


class _Losses(nn.Module):
    """A model's training losses as its forward(), the one method DDP hooks into."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.model.losses(batch)


def _allreduce_sum(group, bucket):  # no annotations: DDP checks them and this module's are strings
    """Sum the ranks' gradients: each rank's loss is already its share of the batch's mean."""
    return dist.all_reduce(bucket.buffer(), group=group, async_op=True).get_future().then(lambda f: f.value()[0])


@contextlib.contextmanager
def session(mode: str, timeout_s: float) -> Iterator[Ranks]:
    """The ranks of a training run: under torchrun a process group over its ranks (whatever
    `mode` says: the launch decides), else the one process. A rank that waits `timeout_s` for
    another (dead or hung) fails, so that a lost rank ends the run instead of hanging it.

    A group that already exists is used as it is and left open: under torchrun a second group
    in the same process finds the first one's stale addresses in the launcher's store and hangs,
    so a process that trains several runs creates the group once itself."""
    if not launched():
        if mode == "ddp":
            raise ConfigError("`train.distributed` is ddp but this process was not started by torchrun: run "
                              "`stages/run train <dataset> <model> <seed>` (starts `train.processes` ranks) or "
                              "`torchrun --nproc-per-node N -m stages.train <dataset> <model> <seed>`")
        yield Ranks()
        return
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
    ranks = Ranks(dist.get_rank(), dist.get_world_size(), device)
    if ranks.main:
        log.info("DDP: %d ranks (%s)", ranks.world, dist.get_backend())
    else:  # one rank speaks for all, for the rest of this process (a rank's whole life)
        logging.getLogger("lrd").setLevel(logging.WARNING)
    try:
        yield ranks
    except (dist.DistError, RuntimeError) as exc:
        # DDP's gradient hooks re-raise the backend's errors as plain RuntimeErrors.
        if not isinstance(exc, dist.DistError) and not any(w in str(exc) for w in ("gloo", "NCCL", "ProcessGroup")):
            raise
        raise DistributedError(
            f"rank {ranks.rank} of {ranks.world} lost the other training processes ({_reason(exc)}): one died or did not answer "
            f"within `train.ddp_timeout` = {timeout_s:g} s. The resume point of the last finished epoch is kept; "
            "running the stage again resumes from it") from None
    if owned:  # only after a clean run: with a rank gone, tearing the group down may wait on it
        dist.destroy_process_group()


def _reason(exc: Exception) -> str:
    """The backend's own words, without the wrappers and the source location around them."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rsplit("RuntimeError: ", 1)[-1]
    return re.sub(r"^\[[^\]]*:\d+\] ", "", line).split(". ")[0][:200]
