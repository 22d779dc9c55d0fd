"""What a latent type is, in words a person reads: a description from its strongest enrichments
("same year x6.0, same genre x2.0"), how its signature attribute falls with pair strength (per
decile, with CIs), and how often its pairs are predefined item-item pairs (Office: complement,
substitute) against all candidate pairs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lrd.discover.coherence import wilson
from lrd.discover.strength import strength_deciles
from lrd.keys import KeySet

DESCRIBED = 3  # enrichments named per type
MIN_NAMED_PAIRS = 5  # an item-item relation names a type only with this many of its pairs in it


def _times(lift: float) -> str:
    return f"x{lift:.1f}" if round(lift, 1) < 10 else f"x{lift:.0f}"


def _singular(name: str) -> str:
    """"genres" -> "genre": attribute groups are named as the dataset's column."""
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


def enrichments(entry: dict, item_item: dict | None, known_lift: float | None) -> list[tuple[str, float]]:
    """(label, lift) of what a type's pairs hold more often than chance: each attribute above
    random pairs (lower CI bound > 1), each predefined item-item type above its share of all
    candidate pairs (likewise), and the known relations gathered in it; strongest first."""
    out = [(f"same {_singular(a)}", x["lift_random"]) for a, x in entry.get("attributes", {}).items()
           if "=" not in a and x["lift_random_ci"] and x["lift_random_ci"][0] > 1]
    for row in (item_item or {}).get("types", {}).get(entry["name"], {}).values():
        if row["lift_ci"] and row["lift_ci"][0] > 1 and row["sharing"] >= MIN_NAMED_PAIRS:
            out.append((row["relation"], row["lift"]))
    if known_lift is not None and known_lift > 1:
        out.append(("film series", known_lift))
    return sorted(out, key=lambda e: (-e[1], e[0]))


def type_description(entry: dict, item_item: dict | None = None, known_lift: float | None = None) -> str:
    """The type's strongest enrichments in words, or why there are none."""
    if not entry["confident"]:
        return "no confident pairs"
    found = enrichments(entry, item_item, known_lift)[:DESCRIBED]
    return ", ".join(f"{label} {_times(lift)}" for label, lift in found) or "nothing above chance"


def with_descriptions(relation_types: pa.Table, readout: dict) -> pa.Table:
    """relation_types with a `description` column: the readout's for latent types, null for the others."""
    by_id = {t["id"]: t["description"] for t in readout["types"]}
    ids = relation_types.column("id").to_pylist()
    return relation_types.append_column("description", pa.array([by_id.get(i) for i in ids], pa.string()))


def signature_attribute(entry: dict, shown: tuple[str, ...]) -> str | None:
    """The shown attribute whose lift over random pairs is highest for the type (None without data)."""
    lifts = {a: entry["attributes"][a]["lift_random"] for a in shown if entry.get("attributes", {}).get(a, {}).get("lift_random") is not None}
    return max(lifts, key=lifts.get) if lifts else None


def decile_table(strength: np.ndarray, keys: np.ndarray, shared: np.ndarray) -> dict:
    """Pairs, share sharing the attribute and its Wilson CI per strength decile (strongest first),
    and whether the top decile's CI lies above the bottom one's."""
    n, k = strength_deciles(strength, keys, shared)
    lo, hi = wilson(k, n)
    share = np.divide(k, n, out=np.zeros(len(n)), where=n > 0)
    return {"pairs": n.tolist(), "sharing": k.tolist(), "share": share.round(4).tolist(),
            "ci": np.c_[lo, hi].round(4).tolist(), "top_above_bottom": bool(n[0] and n[-1] and lo[0] > hi[-1])}


def item_item_shares(heads: np.ndarray, tails: np.ndarray, relation: np.ndarray, type_names: dict[int, str], relation_types: pa.Table,
                     relations: pa.Table, n_items: int) -> dict | None:
    """Per latent type and predefined item-item type (complement, substitute): the share of the
    type's pairs that are such pairs (either direction), with its Wilson CI, against the share
    among all labelled pairs, as a lift. None when the dataset has no item-item types."""
    kinds = dict(zip(relation_types.column("id").to_pylist(), relation_types.column("kind").to_pylist()))
    names = dict(zip(relation_types.column("id").to_pylist(), relation_types.column("name").to_pylist()))
    item_item = sorted(i for i, k in kinds.items() if k == "item-item")
    if not item_item or not len(heads):
        return None
    base = n_items + 1
    rel = relations.column("relation").to_numpy().astype(np.int64)
    tail_col = pc.fill_null(relations.column("tail"), 0).to_numpy().astype(np.int64)
    head_col = relations.column("head").to_numpy().astype(np.int64)
    out = {"base": {}, "types": {name: {} for name in type_names.values()}}
    ids = np.array(sorted(type_names))
    codes = np.searchsorted(ids, relation)
    n = np.bincount(codes, minlength=len(ids))
    for rid in item_item:
        sel = (rel == rid) & (tail_col > 0)
        pairs = KeySet(np.unique(np.r_[head_col[sel] * base + tail_col[sel], tail_col[sel] * base + head_col[sel]]), is_sorted=True)
        hit = pairs.contains(heads * base + tails)
        base_share = float(hit.mean())
        out["base"][names[rid]] = base_share
        k = np.bincount(codes[hit], minlength=len(ids))
        lo, hi = wilson(k, n)
        for j, tid in enumerate(ids.tolist()):
            share = k[j] / n[j] if n[j] else None
            ok = share is not None and base_share > 0
            out["types"][type_names[tid]][names[rid]] = {
                "relation": names[rid], "pairs": int(n[j]), "sharing": int(k[j]), "share": share, "ci": [float(lo[j]), float(hi[j])],
                "lift": share / base_share if ok else None, "lift_ci": [float(lo[j]) / base_share, float(hi[j]) / base_share] if ok else None}
    return out
