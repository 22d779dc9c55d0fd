"""Relation types, entities and knowledge-graph triples as the models see them.

Entities are the items 0..n (0 is padding but an ordinary learnable row, as in the reference)
followed, for each attribute relation, by a "missing" entity and one entity per value. Each
(item, relation) pair has a value entity: the item's value for attribute relations, entity 0
for the virtual, item-item and latent ones.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lrd.errors import DataError
from lrd.keys import KeySet


def latent_names(k: int) -> list[str]:
    """Names of the K latent relation types, as discover writes them in relation_types.parquet."""
    return [f"latent_{i}" for i in range(1, k + 1)]


@dataclasses.dataclass
class RelationGraph:
    n_items: int
    names: list[str]  # model relation id -> name; 0 is the virtual type
    kinds: list[str]  # virtual | item-item | attribute | latent
    global_ids: list[int]  # model relation id -> id in relation_types.parquet (latent: discover's ids)
    n_entities: int
    value_of: np.ndarray  # (n_items + 1) x R entity ids
    heads: np.ndarray  # triples: item-item (h, r, t, 0); attribute (h, a, -1, value entity)
    rels: np.ndarray
    tails: np.ndarray
    values: np.ndarray
    members: np.ndarray  # items grouped by value entity (CSR with member_start)
    member_start: np.ndarray

    @property
    def n_relations(self) -> int:
        return len(self.names)

    @property
    def n_triples(self) -> int:
        return len(self.heads)

    def kg_weight(self, setting: float | None, n_interactions: int) -> float:
        """γ of the KG loss: the setting, or (null) triples per interaction, as the reference."""
        return setting if setting is not None else self.n_triples / n_interactions

    @property
    def latent(self) -> slice:
        """Model relation ids of the latent types (empty when there are none)."""
        first = self.kinds.index("latent") if "latent" in self.kinds else self.n_relations
        return slice(first, self.n_relations)

    @classmethod
    def from_tables(
        cls,
        relation_types: pa.Table,
        relations: pa.Table,
        n_items: int,
        kinds: tuple[str, ...] = ("item-item", "attribute"),
        latent: list[str] | None = None,
        static: pa.Table | None = None,
    ) -> "RelationGraph":
        """Build from ingest's tables, keeping the predefined types of the given kinds.

        `latent` appends latent types (for +LRD models, ids following relation_types.parquet's);
        `static` (head, tail, relation) adds triples for them (the static variant).
        """
        all_names = relation_types.column("name").to_pylist()
        all_kinds = relation_types.column("kind").to_pylist()
        if relation_types.column("id").to_pylist() != list(range(len(all_names))):
            raise DataError("relation_types.parquet: ids must be 0..n-1 in order; re-run `dvc repro ingest`")
        global_ids = [0] + [i for i, k in enumerate(all_kinds) if k in kinds and i > 0]
        names = [all_names[i] for i in global_ids]
        kinds_ = [all_kinds[i] for i in global_ids]
        to_model = np.full(len(all_names), -1, dtype=np.int64)
        to_model[global_ids] = np.arange(len(global_ids))
        rel_ids = relations.column("relation").to_numpy().astype(np.int64)
        unknown = (rel_ids < 0) | (rel_ids >= len(all_names))
        if unknown.any():
            raise DataError(
                f"relations.parquet: row {int(np.flatnonzero(unknown)[0])} has relation id {int(rel_ids[unknown][0])}, but "
                f"relation_types.parquet defines ids 0..{len(all_names) - 1}; the two tables do not belong together: re-run `dvc repro ingest`"
            )
        rels = to_model[rel_ids]
        keep = np.flatnonzero(rels >= 0)
        relations = relations.take(pa.array(keep))
        rels = rels[keep]
        heads = relations.column("head").to_numpy().astype(np.int64)
        tails = pc.fill_null(relations.column("tail"), -1).to_numpy().astype(np.int64)
        too_big = (heads > n_items) | (tails > n_items) | (heads < 1)
        if too_big.any():
            raise DataError(
                f"relations.parquet: row {int(np.flatnonzero(too_big)[0])} names item ids outside 1..{n_items}; "
                "the relation table does not belong to this dataset: re-run `dvc repro ingest`"
            )
        kinds = kinds_
        if latent:
            first_latent = len(all_names)
            global_ids = global_ids + list(range(first_latent, first_latent + len(latent)))
            names = names + list(latent)
            kinds = kinds + ["latent"] * len(latent)
        R = len(names)

        # Attribute values -> entities, numbered per relation after the items.
        value_of = np.zeros((n_items + 1, R), dtype=np.int64)
        values = np.zeros(len(heads), dtype=np.int64)
        next_entity = n_items + 1
        value_col = relations.column("value")
        for r in range(R):
            if kinds[r] != "attribute":
                continue
            sel = np.flatnonzero(rels == r)
            labels = pc.take(value_col, pa.array(sel)).to_numpy(zero_copy_only=False) if len(sel) else np.array([], dtype=object)
            uniq, codes = np.unique(labels.astype(str), return_inverse=True) if len(sel) else (np.array([]), np.array([], int))
            missing_entity = next_entity
            value_of[:, r] = missing_entity  # items without a value see the "missing" entity
            value_of[heads[sel], r] = missing_entity + 1 + codes
            values[sel] = missing_entity + 1 + codes
            next_entity += 1 + len(uniq)

        if static is not None and static.num_rows:
            s_heads = static.column("head").to_numpy().astype(np.int64)
            s_tails = static.column("tail").to_numpy().astype(np.int64)
            s_global = static.column("relation").to_numpy().astype(np.int64)
            to_model = np.full(max(global_ids) + 1, -1, dtype=np.int64)
            to_model[global_ids] = np.arange(R)
            s_rels = np.where((s_global >= 0) & (s_global < len(to_model)), to_model[np.clip(s_global, 0, len(to_model) - 1)], -1)
            if s_rels.min() < 0 or max(s_heads.max(), s_tails.max()) > n_items:
                raise DataError(
                    "latent relation table: relation or item ids exceed this dataset's "
                    f"{R} relation types / {n_items} items; re-run `dvc repro discover`"
                )
            heads = np.concatenate([heads, s_heads])
            rels = np.concatenate([rels, s_rels])
            tails = np.concatenate([tails, s_tails])
            values = np.concatenate([values, np.zeros(len(s_heads), np.int64)])

        # Items grouped by value entity, to draw "another item with this value" quickly.
        attr = tails < 0
        order = np.argsort(values[attr], kind="stable")
        members = heads[attr][order]
        counts = np.bincount(values[attr], minlength=next_entity)
        member_start = np.r_[0, np.cumsum(counts)]
        return cls(n_items, names, kinds, global_ids, next_entity, value_of, heads, rels, tails, values, members, member_start)

    def sample_kg(self, rng: np.random.Generator, n: int, neg_head_p: float = 0.5) -> dict[str, np.ndarray]:
        """n positive triples and one corrupted triple each, for the DistMult KG loss.

        Attribute triples (h, a, v) become item triples (h, a, t', v) with t' a random item
        sharing the value. The corrupted triple replaces the head (probability neg_head_p) or
        the tail by a random item, redrawn while the result is a known item-item triple; as in
        the reference, a corrupted attribute triple is not checked (the random item may share
        the value), since the reference tests it against triples whose tail is the value.
        """
        if self.n_triples == 0:
            return {}
        pick = rng.choice(self.n_triples, size=n, replace=self.n_triples < n)
        h, r, t, v = self.heads[pick], self.rels[pick], self.tails[pick].copy(), self.values[pick]
        attr = t < 0
        if attr.any():
            lo = self.member_start[v[attr]]
            size = self.member_start[v[attr] + 1] - lo
            t[attr] = self.members[lo + (rng.random(attr.sum()) * size).astype(np.int64)]
        corrupt_head = rng.random(n) < neg_head_p
        nh, nt = h.copy(), t.copy()
        pending = np.arange(n)
        for _ in range(8):
            draw = rng.integers(1, self.n_items + 1, size=len(pending))
            ch = corrupt_head[pending]
            nh[pending[ch]] = draw[ch]
            nt[pending[~ch]] = draw[~ch]
            pending = pending[self._is_known(nh[pending], r[pending], nt[pending], v[pending])]
            if len(pending) == 0:
                break
        return {"h": h, "r": r, "t": t, "v": v, "neg_h": nh, "neg_t": nt}

    def _is_known(self, h: np.ndarray, r: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Whether (h, r, t) is a known item-item triple (never for attribute triples, v > 0)."""
        out = np.zeros(len(h), dtype=bool)
        item = v == 0
        if item.any():
            out[item] = self._item_triples.contains(self._triple_keys(h[item], r[item], t[item]))
        return out

    def _triple_keys(self, h: np.ndarray, r: np.ndarray, t: np.ndarray) -> np.ndarray:
        return (h * self.n_relations + r) * (self.n_items + 1) + t

    @functools.cached_property
    def _item_triples(self) -> KeySet:
        item = self.tails >= 0
        return KeySet(self._triple_keys(self.heads[item], self.rels[item], self.tails[item]))
