"""How good the discovered relations look: usage of each latent type, confident pairs, their
agreement with the predefined item-item types (NMI), and items that gained a relation."""

from __future__ import annotations

import dataclasses

import numpy as np

from lrd.keys import KeySet


@dataclasses.dataclass
class Readout:
    """Streaming accumulators, fed one labelled chunk at a time (a labels.Observer)."""

    n_items: int
    n_latent: int
    min_probability: float
    predefined: KeySet  # predefined item-item pair keys
    predefined_codes: np.ndarray  # type code of each
    n_predefined: int
    usage: np.ndarray = None
    confident_usage: np.ndarray = None
    contingency: np.ndarray = None
    confident_items: np.ndarray = None
    entropy_sum: float = 0.0
    pairs: int = 0

    def __post_init__(self):
        self.usage = np.zeros(self.n_latent, np.int64)
        self.confident_usage = np.zeros(self.n_latent, np.int64)
        self.contingency = np.zeros((self.n_predefined + 1, self.n_latent), np.int64)
        self.confident_items = np.zeros(self.n_items + 1, bool)

    def __call__(self, keys, heads, tails, latent_idx, prob, entropy) -> None:
        self.pairs += len(keys)
        self.entropy_sum += float(entropy.sum())
        self.usage += np.bincount(latent_idx, minlength=self.n_latent)
        conf = prob >= self.min_probability
        self.confident_usage += np.bincount(latent_idx[conf], minlength=self.n_latent)
        self.confident_items[heads[conf]] = True
        self.confident_items[tails[conf]] = True
        pos = self.predefined.find(keys)
        hit = pos >= 0
        np.add.at(self.contingency, (self.predefined_codes[pos[hit]], latent_idx[hit]), 1)


def normalized_mutual_information(contingency: np.ndarray) -> float | None:
    """NMI (arithmetic-mean normalisation) of a contingency table; None without data."""
    n = contingency.sum()
    if n == 0:
        return None
    p = contingency / n
    pr, pc = p.sum(1), p.sum(0)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / (pr[:, None] * pc[None, :])[nz])).sum())
    hr = -float((pr[pr > 0] * np.log(pr[pr > 0])).sum())
    hc = -float((pc[pc > 0] * np.log(pc[pc > 0])).sum())
    return mi / ((hr + hc) / 2) if hr + hc > 0 else 0.0
