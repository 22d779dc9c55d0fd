"""A run's resume point: everything that decides the rest of it, saved after every epoch.

A killed run restarted with the same inputs continues from the last finished epoch and, on
the same machine and thread count, ends bit-identical to an uninterrupted run. The state
carries a fingerprint of what produced it (the run's settings, the data it read, the code of
the modules that compute it); a state with another fingerprint, or an unreadable one, is never
resumed: the run starts over and says why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from lrd.errors import DataError, MissingUpstreamError
from lrd.io import atomic_path, sha256_file
from lrd.train.loop import LoopState
from lrd.train.stopping import StoppingRule

log = logging.getLogger(__name__)


# The modules whose code decides what a run computes (settings, paths and logging do not:
# the settings themselves are part of the fingerprint).
COMPUTING_MODULES = ("lrd.models", "lrd.train", "lrd.graph", "lrd.sequences", "lrd.evaluate", "lrd.experiment", "lrd.keys",
                     "lrd.data.sampling", "lrd.data.tables")


def code_fingerprint(prefixes: tuple[str, ...] = COMPUTING_MODULES) -> str:
    """sha256 over the source of the loaded modules that decide what a run computes."""
    h = hashlib.sha256()
    for name in sorted(sys.modules):
        file = getattr(sys.modules[name], "__file__", None)
        if file and file.endswith(".py") and any(name == p or name.startswith(p + ".") for p in prefixes):
            h.update(name.encode() + b"\0" + Path(file).read_bytes())
    return h.hexdigest()[:16]


def files_fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.name.encode() + b"\0" + sha256_file(path).encode())
    return h.hexdigest()[:16]


def save_file(obj, path: Path) -> None:
    """torch.save, atomically, through ordinary file writes: a full disk is then an OSError
    (ENOSPC), which the stages report as such, not torch's "enforce fail" RuntimeError."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(buffer.getbuffer())


def load_weights(path: Path, fix: str) -> dict:
    """A state dict saved by save_file; a damaged or foreign file is a DataError naming it and `fix`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MissingUpstreamError(f"{path} does not exist: {fix}") from None
    except Exception as exc:  # unpickling, zip and EOF errors all mean the same: not our weights
        raise DataError(f"{path} is not a readable weights file ({type(exc).__name__}: {str(exc)[:80]}): {fix}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path} holds no state dict of tensors: {fix}")
    return state


@dataclasses.dataclass
class ResumePoint:
    path: Path
    fingerprint: dict

    def save(self, model: torch.nn.Module, opt: torch.optim.Optimizer, state: LoopState) -> None:
        payload = {
            "fingerprint": self.fingerprint,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "numpy_rng": json.dumps(state.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "curve": json.dumps(state.curve),
            "stopper": {"history": list(state.stopper.history), "best_epoch": state.stopper.best_epoch},
            "best_state": state.best_state,
            "seconds": [state.train_seconds, state.eval_seconds],
            "stopped": state.stopped,
        }
        save_file(payload, self.path)

    def restore(self, model: torch.nn.Module, opt: torch.optim.Optimizer, stopper: StoppingRule, rng: np.random.Generator) -> LoopState | None:
        """The saved state loaded into `model`, `opt` and `stopper`; None (and a warning) when there is none to trust."""
        if not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            differs = {k: (saved["fingerprint"].get(k), v) for k, v in self.fingerprint.items() if saved["fingerprint"].get(k) != v}
        except Exception as exc:  # a truncated or corrupt file: any unpickling error
            log.warning("%s cannot be read (%s: %s); starting the run over", self.path, type(exc).__name__, str(exc)[:120])
            return None
        if differs:
            what = "; ".join(f"{k}: saved {a!r:.50} vs now {b!r:.50}" for k, (a, b) in differs.items())
            log.warning("%s was saved by another run (%s); starting over instead of mixing the two", self.path, what)
            return None
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = json.loads(saved["numpy_rng"])
        torch.set_rng_state(saved["torch_rng"])
        if saved["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        stopper.history, stopper.best_epoch = list(saved["stopper"]["history"]), saved["stopper"]["best_epoch"]
        curve = json.loads(saved["curve"])
        log.info("resuming %s after epoch %d (best so far: epoch %d)", self.path.parent, len(curve), stopper.best_epoch)
        return LoopState(rng=rng, stopper=stopper, curve=curve, best_state=saved["best_state"],
                         train_seconds=saved["seconds"][0], eval_seconds=saved["seconds"][1], stopped=saved["stopped"])
