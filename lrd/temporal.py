"""Time gaps as KDA sees them: the log-normalised gap, and the spectrum of each relation
type's empirical gap distribution that initialises KDA's temporal kernel (the reference's
DFTReader with freq_rand 0, its KDA default).

Gaps per relation type, over every user's whole sequence (all splits, as the reference):
- virtual: between consecutive interactions;
- attribute: between consecutive interactions with items of the same value (items without a
  value form a group of their own, as the reference's groupby on value 0 does);
- item-item: from each interaction back to the nearest earlier one that relates to it
  (a triple earlier item -> this item), the first such one with a positive gap.
Only positive gaps count. Each distribution is a histogram of floor(τ) (τ the normalised gap),
scaled to a maximum of 1; its DFT (2·FFT, non-negative frequencies) gives the kernel's
real and imaginary parts.
"""

from __future__ import annotations

import numpy as np

from lrd.graph import RelationGraph
from lrd.keys import KeySet
from lrd.sequences import Sequences

TIME_SCALE = 60.0  # seconds: gaps are measured in minutes


def log_time_gaps(target_times: np.ndarray, history_times: np.ndarray, scale: float = TIME_SCALE) -> np.ndarray:
    """KDA's normalised gap τ = max(log2(Δt / scale + 1e-6), 0), Δt in seconds (B x H)."""
    gap = np.maximum(target_times[:, None] - history_times, 0) / scale
    return np.maximum(np.log2(gap + 1e-6), 0.0).astype(np.float32)


def gap_spectra(seqs: Sequences, graph: RelationGraph, n_dft: int) -> np.ndarray:
    """R x (n_dft/2 + 1) complex: the DFT of each relation type's gap histogram (zeros for latent
    types and types without a gap)."""
    out = np.zeros((graph.n_relations, n_dft // 2 + 1), dtype=complex)
    for r, kind in enumerate(graph.kinds):
        if kind == "virtual":
            gaps = _gaps_within(seqs, np.zeros(len(seqs.items), np.int64))
        elif kind == "attribute":
            gaps = _gaps_within(seqs, graph.value_of[seqs.items, r])
        elif kind == "item-item":
            gaps = _gaps_to_related(seqs, graph, r)
        else:
            continue
        if len(gaps):
            tau = np.maximum(np.log2(gaps / TIME_SCALE + 1e-6), 0).astype(np.int64)
            hist = np.bincount(tau).astype(float)
            out[r] = 2 * np.fft.fft(hist / hist.max(), n_dft)[: n_dft // 2 + 1]
    return out


def _gaps_within(seqs: Sequences, group: np.ndarray) -> np.ndarray:
    """Positive gaps between consecutive interactions of a user within the same group."""
    order = np.lexsort((seqs.times, group, seqs.users))  # stable: ties keep sequence order
    u, g, t = seqs.users[order], group[order], seqs.times[order]
    same = (u[1:] == u[:-1]) & (g[1:] == g[:-1])
    gaps = (t[1:] - t[:-1])[same]
    return gaps[gaps > 0].astype(float)


def _gaps_to_related(seqs: Sequences, graph: RelationGraph, r: int) -> np.ndarray:
    """For each interaction, the gap back to the nearest earlier related one (lag by lag)."""
    rel = graph.rels == r
    triples = KeySet(graph.heads[rel] * (seqs.n_items + 1) + graph.tails[rel])
    pending = np.flatnonzero(np.arange(len(seqs.items)) > seqs.start)
    gaps = []
    lag = 1
    while len(pending):
        earlier = pending - lag
        pending = pending[earlier >= seqs.start[pending]]  # past the user's first interaction: nothing more to find
        earlier = pending - lag
        delta = seqs.times[pending] - seqs.times[earlier]
        found = (delta > 0) & triples.contains(seqs.items[earlier].astype(np.int64) * (seqs.n_items + 1) + seqs.items[pending])
        gaps.append(delta[found])
        pending = pending[~found]
        lag += 1
    return np.concatenate(gaps).astype(float) if gaps else np.empty(0)
