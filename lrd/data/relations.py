"""Predefined relations: item-item links, shared-value pairs and item attributes.

Relation id 0 is the model's virtual "any item" type; predefined types follow, item-item ones
first, then attributes. Latent types (from `discover`) are numbered after these.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lrd import schemas
from lrd.config.ingest import AttributeConfig
from lrd.errors import ConfigError

VIRTUAL = "any"


def _map_ids(raw: pa.ChunkedArray, raw_ids: pa.Array) -> np.ndarray:
    """Item ids (1..n) for raw ids; 0 where the raw id is not a kept item."""
    pos = pc.index_in(raw, value_set=raw_ids)
    return (pc.fill_null(pos, -1).to_numpy(zero_copy_only=False) + 1).astype(np.int32)


def shared_value_pairs(items: np.ndarray, values: np.ndarray, max_items: int) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs (a, b), a != b, of items that share a value, without repeats.

    Values held by more than `max_items` items are skipped: a value everybody shares (a
    prolific actor) says little about two particular items and costs O(n^2) pairs.
    """
    keys = np.unique(np.stack([values, items], axis=1), axis=0)  # one row per (value, item)
    if len(keys) == 0:
        return np.empty(0, np.int32), np.empty(0, np.int32)
    val, item = keys[:, 0], keys[:, 1]
    starts = np.flatnonzero(np.r_[True, val[1:] != val[:-1]])
    sizes = np.diff(np.r_[starts, len(val)])
    ok = (sizes >= 2) & (sizes <= max_items)
    member = np.flatnonzero(np.repeat(ok, sizes))  # rows of the kept groups, in group order
    starts, sizes = starts[ok], sizes[ok]
    if len(member) == 0:
        return np.empty(0, np.int32), np.empty(0, np.int32)
    group_size = np.repeat(sizes, sizes)
    group_start = np.repeat(starts, sizes)
    heads = np.repeat(member, group_size)
    first = np.repeat(np.cumsum(group_size) - group_size, group_size)
    tails = np.repeat(group_start, group_size) + (np.arange(len(heads)) - first)
    keep = heads != tails
    pairs = np.unique(np.stack([item[heads[keep]], item[tails[keep]]], axis=1), axis=0)
    return pairs[:, 0].astype(np.int32), pairs[:, 1].astype(np.int32)


def bucket_labels(values: np.ndarray, edges: tuple[float, ...]) -> list[str | None]:
    """'1940-1949' style labels for [edge_i, edge_i+1); one bucket per value from the last edge on."""
    out: list[str | None] = []
    edges = tuple(int(e) for e in edges)
    for v in values:
        if v is None or np.isnan(v):
            out.append(None)
            continue
        v = int(v)
        if v < edges[0]:
            out.append(f"<{edges[0]}")
        elif v >= edges[-1]:
            out.append(str(v))
        else:
            i = int(np.searchsorted(edges, v, side="right")) - 1
            lo, hi = edges[i], edges[i + 1] - 1
            out.append(str(lo) if lo == hi else f"{lo}-{hi}")
    return out


def build_relations(
    items: pa.Table,
    links: pa.Table,
    shared: pa.Table,
    attributes: dict[str, AttributeConfig],
    max_items_per_value: int,
) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """Relation types and triples over the kept items (items.item = 1..n, items.raw_id).

    Returns (relation_types, relations, notes) where notes counts what was dropped and why.
    """
    raw_ids = items.column("raw_id").combine_chunks()
    names: list[tuple[str, str]] = [(VIRTUAL, "virtual")]
    heads, rels, tails, values = [], [], [], []
    notes: dict[str, int] = {}

    def add(name: str, kind: str, h, t=None, v=None) -> None:
        names.append((name, kind))
        rid = len(names) - 1
        heads.append(np.asarray(h, np.int32))
        rels.append(np.full(len(h), rid, np.int16))
        tails.append(pa.array(t, pa.int32()) if t is not None else pa.nulls(len(h), pa.int32()))
        values.append(pa.array(v, pa.string()) if v is not None else pa.nulls(len(h), pa.string()))

    if links.num_rows:
        h = _map_ids(links.column("head"), raw_ids)
        t = _map_ids(links.column("tail"), raw_ids)
        rel = links.column("relation").to_numpy(zero_copy_only=False)
        ok = (h > 0) & (t > 0) & (h != t)
        notes["links_dropped_unknown_item"] = int(((h == 0) | (t == 0)).sum())
        for name in sorted(set(rel[ok])):
            sel = ok & (rel == name)
            pairs = np.unique(np.stack([h[sel], t[sel]], axis=1), axis=0)
            add(name, "item-item", pairs[:, 0], pairs[:, 1])

    if shared.num_rows:
        h = _map_ids(shared.column("raw_id"), raw_ids)
        rel = shared.column("relation").to_numpy(zero_copy_only=False)
        value_codes = pc.dictionary_encode(shared.column("value")).combine_chunks().indices.to_numpy(zero_copy_only=False)
        for name in sorted(set(rel)):
            sel = (rel == name) & (h > 0)
            a, b = shared_value_pairs(h[sel], value_codes[sel], max_items_per_value)
            add(f"shares_{name}", "item-item", a, b)

    for column, spec in attributes.items():
        if column not in items.column_names:
            raise ConfigError(
                f"params.yaml: `ingest.attributes` names `{column}`, which this dataset's items do not have; "
                f"available: {', '.join(c for c in items.column_names if c not in ('item', 'raw_id', 'text'))}"
            )
        col = items.column(column)
        item_ids = items.column("item").to_numpy()
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            flat = pc.list_flatten(col)
            owner = item_ids[pc.list_parent_indices(col).to_numpy()]
            flat_np = np.asarray(flat.to_pylist(), dtype=object)
            for value in sorted(set(v for v in flat_np if v not in (None, ""))):
                sel = flat_np == value
                h = np.unique(owner[sel])
                add(f"{column}={value}", "attribute", h, v=[str(value)] * len(h))
            continue
        if spec.bucket_edges:
            numeric = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
            labels = bucket_labels(numeric, spec.bucket_edges)
        else:
            labels = [None if v in (None, "") else str(v) for v in col.to_pylist()]
        have = np.array([v is not None for v in labels], dtype=bool)
        add(column, "attribute", item_ids[have], v=[v for v in labels if v is not None])

    relation_types = pa.table(
        {
            "id": pa.array(np.arange(len(names), dtype=np.int16)),
            "name": pa.array([n for n, _ in names], pa.string()),
            "kind": pa.array([k for _, k in names], pa.string()),
        },
        schema=schemas.RELATION_TYPES,
    )
    if heads:
        relations = pa.table(
            {
                "head": pa.array(np.concatenate(heads)),
                "relation": pa.array(np.concatenate(rels)),
                "tail": pa.concat_arrays(tails),
                "value": pa.concat_arrays(values),
            },
            schema=schemas.RELATIONS,
        )
    else:
        relations = schemas.RELATIONS.empty_table()
    return relation_types, relations, notes
