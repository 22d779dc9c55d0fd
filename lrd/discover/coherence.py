"""Do a latent type's pairs look alike? The share of its confident pairs whose two items share an
attribute value (genre, year bucket, category, brand: the dataset's `attribute` relation types),
against the same share for random item pairs and for co-occurring pairs, as a lift with a CI.

The CI is the Wilson score interval (95%) of the type's share, divided by the baseline's share
(the baselines are 100k pairs or more: their own error is left out). Pairs of one type share
items, so they are not independent draws: read the interval as a lower bound on the uncertainty.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

Z95 = 1.959963984540054
CI_METHOD = "Wilson score interval (95%) of the type's share, divided by the baseline share"


def wilson(successes: np.ndarray | int, n: np.ndarray | int, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial share; (0, 1) where n = 0."""
    k, n = np.asarray(successes, float), np.asarray(n, float)
    m = np.maximum(n, 1)
    p = k / m
    centre = (p + z * z / (2 * m)) / (1 + z * z / m)
    half = z * np.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / (1 + z * z / m)
    return np.where(n > 0, np.clip(centre - half, 0, 1), 0.0), np.where(n > 0, np.clip(centre + half, 0, 1), 1.0)


@dataclasses.dataclass
class ItemAttributes:
    """Item x value incidence per attribute. Each attribute relation type is one attribute
    ("genres=Comedy", "year", "brand"); types named "<group>=<value>" also form the group
    ("genres": the two items share any genre)."""

    incidence: dict[str, sparse.csr_matrix]
    groups: tuple[str, ...]  # the attributes a report shows: groups, and types in no group (the rest are in the JSON)

    @classmethod
    def from_tables(cls, relation_types: pa.Table, relations: pa.Table, n_items: int) -> "ItemAttributes":
        kinds = dict(zip(relation_types.column("id").to_pylist(), relation_types.column("kind").to_pylist()))
        names = dict(zip(relation_types.column("id").to_pylist(), relation_types.column("name").to_pylist()))
        attribute_ids = [i for i, k in kinds.items() if k == "attribute"]
        rows = relations.filter(pc.and_(pc.is_in(relations.column("relation"), pa.array(attribute_ids, relations.schema.field("relation").type)),
                                        pc.is_valid(relations.column("value"))))
        rel = rows.column("relation").to_numpy().astype(np.int64)
        heads = rows.column("head").to_numpy().astype(np.int64)
        # One column per (relation, value): two items share the attribute when a column holds both.
        labels = pc.binary_join_element_wise(pc.cast(rows.column("relation"), pa.string()), pc.cast(rows.column("value"), pa.string()), "\x1f")
        codes = pc.dictionary_encode(labels).combine_chunks().indices.to_numpy().astype(np.int64) if rows.num_rows else np.empty(0, np.int64)
        n_codes = int(codes.max()) + 1 if len(codes) else 0
        members: dict[str, list[int]] = {}
        for rid in attribute_ids:
            name = names[rid]
            members.setdefault(name, []).append(rid)
            if "=" in name:
                members.setdefault(name.split("=", 1)[0], []).append(rid)
        incidence = {}
        for name, rids in members.items():
            sel = np.isin(rel, rids)
            incidence[name] = sparse.csr_matrix((np.ones(int(sel.sum()), np.float32), (heads[sel], codes[sel])), shape=(n_items + 1, max(n_codes, 1)))
        groups = tuple(n for n in members if "=" not in n)  # "genres", "year": not each genre on its own
        return cls(incidence, groups)

    def shared(self, heads: np.ndarray, tails: np.ndarray, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Per attribute, whether each pair's two items share one of its values."""
        out = {}
        for name in names if names is not None else tuple(self.incidence):
            m = self.incidence[name]
            out[name] = np.asarray(m[heads].multiply(m[tails]).sum(1)).ravel() > 0 if len(heads) else np.zeros(0, bool)
        return out


def random_pairs(n_items: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n uniform ordered pairs of distinct items 1..n_items."""
    rng = np.random.default_rng(seed)
    heads = rng.integers(1, n_items + 1, n)
    tails = rng.integers(1, n_items, n)
    return heads, tails + (tails >= heads)  # skips the head: uniform over the other items


def attribute_shares(attrs: ItemAttributes, heads: np.ndarray, tails: np.ndarray, names: tuple[str, ...]) -> dict[str, dict]:
    """Per attribute: pairs, how many share it, the share and its Wilson interval."""
    out = {}
    for name, hit in attrs.shared(heads, tails, names).items():
        k, n = int(hit.sum()), len(hit)
        lo, hi = wilson(k, n)
        out[name] = {"pairs": n, "sharing": k, "share": k / n if n else None, "ci": [float(lo), float(hi)]}
    return out


def lifts(share: dict, baselines: dict[str, dict]) -> dict:
    """The share's lift over each baseline's share, with the share's interval scaled alike."""
    out = dict(share)
    for base, shares in baselines.items():
        b = shares.get("share")
        ok = bool(b) and share["share"] is not None
        out[f"lift_{base}"] = share["share"] / b if ok else None
        out[f"lift_{base}_ci"] = [share["ci"][0] / b, share["ci"][1] / b] if ok else None
    return out
