"""How good the discovered relations look: usage of each latent type, confident pairs, their
agreement with the predefined item-item types (NMI), and items that gained a relation (streamed
while labelling); and the readout a person reads (relation_readout): per type, how often its
confident pairs share an attribute against chance, where they come from, its top titled pairs,
and the recall of known relations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lrd.discover.coherence import CI_METHOD, ItemAttributes, attribute_shares, lifts, random_pairs
from lrd.discover.describe import decile_table, item_item_shares, signature_attribute, type_description
from lrd.discover.known import KnownPairs, known_recall, load_known
from lrd.discover.strength import MIN_STRENGTH
from lrd.io import read_parquet
from lrd.keys import KeySet
from lrd.sequences import Sequences


@dataclasses.dataclass
class Readout:
    """Streaming accumulators, fed one labelled chunk at a time (a labels.Observer)."""

    n_items: int
    n_latent: int
    min_probability: float
    predefined: KeySet  # predefined item-item pair keys
    predefined_codes: np.ndarray  # type code of each
    n_predefined: int
    min_strength: float = MIN_STRENGTH
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

    def __call__(self, keys, heads, tails, latent_idx, prob, entropy, strength) -> None:
        self.pairs += len(keys)
        self.entropy_sum += float(entropy.sum())
        self.usage += np.bincount(latent_idx, minlength=self.n_latent)
        conf = confident_pairs(prob, strength, self.min_probability, self.min_strength)
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


# --------------------------------------------------------------------------------------------
# The readout a person reads: per latent type, do its confident pairs look alike?

BASELINE_PAIRS = 100_000  # random / co-occurring pairs drawn for the chance shares
LATENT_COLUMNS = ["head", "tail", "relation", "probability", "source", "strength"]  # what the readout reads


def confident_pairs(prob: np.ndarray, strength: np.ndarray | None, min_probability: float, min_strength: float = MIN_STRENGTH) -> np.ndarray:
    """The confident pairs: probable (q) and strong (lrd.discover.strength); q alone where a table
    written before the strength existed has none."""
    return (prob >= min_probability) & (strength >= min_strength) if strength is not None else prob >= min_probability


def read_latent(path, stage: str) -> pa.Table:
    """The readout's columns of a triplet table (without strength when it predates it)."""
    try:
        names = set(pq.ParquetFile(path).schema_arrow.names)
    except (pa.ArrowInvalid, OSError):
        names = set(LATENT_COLUMNS)  # missing or unreadable: read_parquet says what to run
    return read_parquet(path, stage, columns=[c for c in LATENT_COLUMNS if c in names])


def consecutive_pairs(seqs: Sequences) -> tuple[np.ndarray, np.ndarray]:
    """(item, the user's next item) of consecutive train interactions: the co-watching baseline,
    the same whatever candidate pairs discover labelled."""
    nxt = np.flatnonzero((seqs.split[1:] == 0) & (seqs.split[:-1] == 0) & (seqs.users[1:] == seqs.users[:-1])
                         & (seqs.items[1:] != seqs.items[:-1]))
    return seqs.items[nxt].astype(np.int64), seqs.items[nxt + 1].astype(np.int64)


def relation_readout(latent: pa.Table, type_names: dict[int, str], attrs: ItemAttributes, titles: np.ndarray, n_items: int,
                     min_probability: float, cooccur: tuple[np.ndarray, np.ndarray], known: KnownPairs | None = None, top: int = 10,
                     seed: int = 0, item_item: dict | None = None) -> dict:
    """Per latent type: its pairs and confident pairs (confident_pairs), where the confident ones
    come from (co-occurrence, neighbours, both), the share of them that share each attribute
    against random pairs and the `cooccur` pairs (heads, tails: consecutive_pairs) as a lift with a
    Wilson CI, the share of its pairs sharing its signature attribute per strength decile, its
    strongest pairs with titles and a description; the known relations' recall. `latent`: head,
    tail, relation, probability, source[, strength]; `titles`: indexed by item id; `item_item`:
    describe.item_item_shares of the same pairs."""
    heads = latent.column("head").to_numpy().astype(np.int64)
    tails = latent.column("tail").to_numpy().astype(np.int64)
    relation = latent.column("relation").to_numpy().astype(np.int64)
    prob = latent.column("probability").to_numpy().astype(np.float64)
    source = np.asarray(pc.cast(latent.column("source"), pa.string()).to_numpy(zero_copy_only=False), dtype=object) if latent.num_rows else np.empty(0, object)
    shown = attrs.groups
    rng = np.random.default_rng(seed)
    co = np.arange(len(cooccur[0]))
    co = np.sort(rng.choice(co, BASELINE_PAIRS, replace=False)) if len(co) > BASELINE_PAIRS else co
    baselines = {"random": attribute_shares(attrs, *random_pairs(n_items, BASELINE_PAIRS, seed), tuple(attrs.incidence)),
                 "cooccur": attribute_shares(attrs, cooccur[0][co], cooccur[1][co], tuple(attrs.incidence))}
    strength = latent.column("strength").to_numpy().astype(np.float64) if "strength" in latent.column_names else None
    confident = confident_pairs(prob, strength, min_probability)
    # Strongest first (q where the table has no strength), then by ids: the same order every time.
    rank = strength if strength is not None else prob
    keys = heads * (n_items + 1) + tails
    types = []
    for rid, name in sorted(type_names.items()):
        mine = relation == rid
        sel = np.flatnonzero(mine & confident)
        entry = {"name": name, "id": rid, "pairs": int(mine.sum()), "confident": len(sel),
                 "sources": {s: int((source[sel] == s).sum()) for s in ("cooccur", "knn", "both")}}
        if len(sel):
            shares = attribute_shares(attrs, heads[sel], tails[sel], tuple(attrs.incidence))
            entry["attributes"] = {a: lifts(shares[a], {b: baselines[b][a] for b in baselines}) for a in attrs.incidence}
            entry["above_chance"] = [a for a in shown if (entry["attributes"][a]["lift_random_ci"] or [0])[0] > 1]
            best = sel[np.lexsort((keys[sel], -rank[sel]))[:top]]
            entry["top_pairs"] = [{"head": int(h), "head_title": str(titles[h]), "tail": int(t), "tail_title": str(titles[t]),
                                   "probability": round(float(p), 4), "strength": None if strength is None else round(float(strength[i]), 3),
                                   "source": str(s)}
                                  for i, h, t, p, s in zip(best, heads[best], tails[best], prob[best], source[best])]
            signature = signature_attribute(entry, shown)
            if strength is not None and signature is not None:
                # Over all the type's pairs, not only the confident ones: does strength order them?
                mine_idx = np.flatnonzero(mine)
                hit = attrs.shared(heads[mine_idx], tails[mine_idx], (signature,))[signature]
                entry["strength_deciles"] = {"attribute": signature, **decile_table(strength[mine_idx], keys[mine_idx], hit)}
        types.append(entry)
    used = [t for t in types if t["confident"]]
    out = {
        "min_probability": min_probability,
        "min_strength": MIN_STRENGTH if strength is not None else None,
        "ci_method": CI_METHOD,
        "attributes_shown": list(shown),
        "baselines": {b: {a: s["share"] for a, s in shares.items()} | {"pairs": next(iter(shares.values()))["pairs"] if shares else 0}
                      for b, shares in baselines.items()},
        "pairs": int(latent.num_rows),
        "confident": int(confident.sum()),
        "types_used": len(used),
        "types_above_chance": sum(bool(t["above_chance"]) for t in used),
        "types_strength_ordered": sum(t.get("strength_deciles", {}).get("top_above_bottom", False) for t in used),
        "types": types,
    }
    if item_item is not None:
        out["item_item"] = item_item
    if known is not None:
        k = out["known"] = known_recall(known, heads, tails, relation, prob, type_names, n_items, 0.5)
        # What the recall is worth: the share of all labelled pairs that are confident (a random
        # candidate's chance), and per type how much more often the known pairs land in it than
        # confident pairs in general (a type that gathers series: lift well above 1).
        at_half = prob >= 0.5
        k["confident_share_of_pairs"] = float(at_half.mean()) if len(prob) else None
        sizes = {t["name"]: int((at_half & (relation == t["id"])).sum()) for t in types}
        k["type_lift"] = {name: (n / k["found"]) / (sizes[name] / at_half.sum()) for name, n in k["types"].items()}
        gathers = {name for name, lift in k["type_lift"].items() if lift > 1 and k["types"][name] >= 3}
        out["types_above_chance_or_known"] = sum(bool(t["above_chance"]) or t["name"] in gathers for t in used)
    known_lift = (out.get("known") or {}).get("type_lift", {})
    for t in types:
        gathered = t["name"] in known_lift and out["known"]["types"].get(t["name"], 0) >= 3
        t["description"] = type_description(t, item_item, known_lift[t["name"]] if gathered else None)
    return out


def latent_type_names(relation_types: pa.Table) -> dict[int, str]:
    """Global id -> name of the latent relation types."""
    latent = relation_types.filter(pc.equal(relation_types.column("kind"), "latent"))
    return dict(zip(latent.column("id").to_pylist(), latent.column("name").to_pylist()))


def item_titles(items: pa.Table, n_items: int) -> np.ndarray:
    """Title (else text) of each item, indexed by item id."""
    titles = np.full(n_items + 1, "", dtype=object)
    title = pc.if_else(pc.fill_null(pc.not_equal(items.column("title"), ""), False), items.column("title"), items.column("text")) \
        if "title" in items.column_names else items.column("text")
    titles[items.column("item").to_numpy()] = np.asarray(title.to_pylist(), dtype=object)
    return titles


def readout_for(tables, relation_types: pa.Table, latent: pa.Table, dataset: str, min_probability: float, top: int = 10) -> dict:
    """relation_readout for a dataset's processed tables (DatasetTables) and a latent table."""
    attrs = ItemAttributes.from_tables(tables.relation_types, tables.relations, tables.n_items)
    seqs = Sequences.from_table(tables.interactions, tables.n_users, tables.n_items)
    names = latent_type_names(relation_types)
    heads, tails, relation = (latent.column(c).to_numpy().astype(np.int64) for c in ("head", "tail", "relation"))
    item_item = item_item_shares(heads, tails, relation, names, tables.relation_types, tables.relations, tables.n_items)
    return relation_readout(latent, names, attrs, item_titles(tables.items, tables.n_items), tables.n_items,
                            min_probability, consecutive_pairs(seqs), load_known(dataset, tables.items), top, item_item=item_item)
