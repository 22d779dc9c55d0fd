"""Relations a person knows to be real, shipped with the code: for ML-100K, consecutive films of
one series (Star Wars -> The Empire Strikes Back, Alien -> Aliens, ...), matched to item ids by
exact title. Their recall among the confident latent pairs is a check that does not lean on the
dataset's own attributes (which the embeddings and neighbours may have seen)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from lrd.keys import KeySet

KNOWN_DIR = Path(__file__).with_name("known_relations")


@dataclasses.dataclass
class KnownPairs:
    series: list[str]
    head_titles: list[str]
    tail_titles: list[str]
    heads: np.ndarray  # item id, 0 where the title matches no item or several
    tails: np.ndarray

    @property
    def matched(self) -> np.ndarray:
        return (self.heads > 0) & (self.tails > 0)


def known_file(dataset: str) -> Path:
    return KNOWN_DIR / f"{dataset}.csv"


def load_known(dataset: str, items: pa.Table, path: Path | None = None) -> KnownPairs | None:
    """The dataset's known pairs (None when none ship for it), titles matched exactly."""
    path = path or known_file(dataset)
    if not path.exists():
        return None
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in ("series", "head_title", "tail_title")}))
    titles = np.asarray(items.column("title").to_pylist(), dtype=object)
    ids = items.column("item").to_numpy()
    # A title held by two items (remakes, duplicate entries) is not a match: which one is meant?
    uniq, counts = np.unique(titles.astype(str), return_counts=True)
    unique_titles = set(uniq[counts == 1].tolist())
    lookup = {t: int(i) for t, i in zip(titles.tolist(), ids.tolist()) if t in unique_titles}
    heads = np.array([lookup.get(t, 0) for t in table.column("head_title").to_pylist()], np.int64)  # one per known pair (dozens)
    tails = np.array([lookup.get(t, 0) for t in table.column("tail_title").to_pylist()], np.int64)
    return KnownPairs(table.column("series").to_pylist(), table.column("head_title").to_pylist(), table.column("tail_title").to_pylist(), heads, tails)


def known_recall(known: KnownPairs, heads: np.ndarray, tails: np.ndarray, relation: np.ndarray, probability: np.ndarray,
                 type_names: dict[int, str], n_items: int, min_probability: float = 0.5) -> dict:
    """How many known pairs are candidates (either order), how many are confident (probability >=
    `min_probability` in either order; the more probable order counts), and in which types."""
    base = n_items + 1
    index = KeySet(heads.astype(np.int64) * base + tails)
    fwd = index.find(known.heads * base + known.tails)
    bwd = index.find(known.tails * base + known.heads)
    ok = known.matched
    p_fwd = np.where(fwd >= 0, probability[np.maximum(fwd, 0)], -1.0)
    p_bwd = np.where(bwd >= 0, probability[np.maximum(bwd, 0)], -1.0)
    best = np.where(p_fwd >= p_bwd, fwd, bwd)
    p = np.maximum(p_fwd, p_bwd)
    candidate = ok & (best >= 0)
    found = candidate & (p >= min_probability)
    types = [type_names.get(int(r), str(r)) for r in relation[best[found]]]
    n = int(ok.sum())
    return {
        "pairs": len(known.heads),
        "matched": n,
        "unmatched": [f"{h} -> {t}" for h, t, m in zip(known.head_titles, known.tail_titles, ok) if not m],
        "candidates": int(candidate.sum()),
        "found": int(found.sum()),
        "min_probability": min_probability,
        "recall": found.sum() / n if n else None,
        "types": {t: types.count(t) for t in sorted(set(types))},
        "found_pairs": [f"{known.head_titles[i]} -> {known.tail_titles[i]} ({type_names.get(int(relation[best[i]]), '')}, p = {p[i]:.2f})"
                        for i in np.flatnonzero(found)],
    }
