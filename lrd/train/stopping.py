"""When to stop training, as small objects the loop asks after every epoch.

Each rule watches one number per epoch (dev NDCG@5, or discover's held-out loss) and keeps
its whole state in `history`, so a resumed run decides exactly as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class StoppingRule:
    history: list[float] = dataclasses.field(default_factory=list)
    best_epoch: int = 0  # 1-based; 0 before the first epoch

    def update(self, value: float) -> bool:
        """Record this epoch's value; True when it is the new best (the checkpoint to keep)."""
        improved = not self.history or self.better(value, self.history[self.best_epoch - 1])
        self.history.append(value)
        if improved:
            self.best_epoch = len(self.history)
        return improved

    @property
    def best(self) -> float:
        return self.history[self.best_epoch - 1]

    def better(self, value: float, best: float) -> bool:
        raise NotImplementedError

    def should_stop(self) -> bool:
        raise NotImplementedError

    def reason(self) -> str:
        raise NotImplementedError

    def last_epoch(self) -> int:
        """The epoch after which the rule stops the run unless the value improves again (for the ETA)."""
        raise NotImplementedError


@dataclasses.dataclass
class Patience(StoppingRule):
    """Stop after `patience` epochs without an improvement larger than `min_delta` (relative)."""

    patience: int = 5
    min_delta: float = 0.0
    maximize: bool = True

    def better(self, value: float, best: float) -> bool:
        gain = value - best if self.maximize else best - value
        return gain > self.min_delta * abs(best)

    def should_stop(self) -> bool:
        return len(self.history) - self.best_epoch >= self.patience

    def reason(self) -> str:
        return f"no improvement for {self.patience} epochs"

    def last_epoch(self) -> int:
        return self.best_epoch + self.patience


@dataclasses.dataclass
class ReferenceRule(StoppingRule):
    """The LRD reference code's rule (ReChorus): a tie with the best counts as the new best; stop
    when past `min_epochs` the last `window` values never rose, or when the best is more than
    `min_epochs` epochs back."""

    min_epochs: int = 20
    window: int = 5

    def better(self, value: float, best: float) -> bool:
        return value >= best

    def should_stop(self) -> bool:
        h = self.history
        # `window` values are needed to call them flat (with min_epochs below it, one value would do)
        flat = len(h) > self.min_epochs and len(h) >= self.window and all(a >= b for a, b in zip(h[-self.window :], h[-self.window + 1 :]))
        first_best = h.index(max(h)) + 1
        return flat or len(h) - first_best > self.min_epochs

    def last_epoch(self) -> int:
        return (self.history.index(max(self.history)) + 1 if self.history else 0) + self.min_epochs + 1

    def reason(self) -> str:
        return f"past epoch {self.min_epochs} the last {self.window} values did not rise, or the best is {self.min_epochs}+ epochs back"
