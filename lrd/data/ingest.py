"""Raw dataset -> canonical tables: the whole protocol of method doc §2 in one function."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lrd import schemas
from lrd.config import IngestConfig
from lrd.data import protocol
from lrd.data.readers.base import RawDataset
from lrd.data.relations import build_relations
from lrd.data.text import render_texts
from lrd.errors import DataError

log = logging.getLogger(__name__)

SPLIT_NAMES = np.array(schemas.SPLITS, dtype=object)


@dataclasses.dataclass
class Ingested:
    interactions: pa.Table
    users: pa.Table
    items: pa.Table
    relation_types: pa.Table
    relations: pa.Table
    candidates: pa.Table
    stats: dict

    def tables(self) -> dict[str, pa.Table]:
        return {
            "interactions": self.interactions,
            "users": self.users,
            "items": self.items,
            "relation_types": self.relation_types,
            "relations": self.relations,
            "candidates": self.candidates,
        }


def ingest(raw: RawDataset, cfg: IngestConfig) -> Ingested:
    inter = raw.interactions
    where = raw.files.get("interactions", "the interactions")
    if inter.num_rows == 0:
        raise DataError(f"{where}: no interactions in the file")
    if raw.keep_ids:
        users, user_vocab = _keep_ids(inter.column("user"), where, "user")
        items, item_vocab = _keep_ids(inter.column("item"), where, "item")
    else:
        users, user_vocab = protocol.encode_ids(inter.column("user"))
        items, item_vocab = protocol.encode_ids(inter.column("item"))
    timestamps = inter.column("timestamp").to_numpy().astype(np.int64)
    n_raw = len(users)

    if "split" in inter.column_names:  # pre-split dataset: keep its split exactly
        split = _split_codes(inter.column("split"))
        keep = np.ones(n_raw, dtype=bool)
    else:
        keep = protocol.dedupe(users, items, timestamps)
        n_dupes = int((~keep).sum())
        core = protocol.kcore_mask(users[keep], items[keep], cfg.min_core)
        keep[np.flatnonzero(keep)[~core]] = False
        if not keep.any():
            raise DataError(
                f"{where}: no interaction survives {cfg.min_core}-core filtering ({n_raw} rows read). "
                "Lower `ingest.min_core` or check the file."
            )
        users, user_vocab = protocol.renumber(users[keep], user_vocab)
        items, item_vocab = protocol.renumber(items[keep], item_vocab)
        timestamps = timestamps[keep]
        log.info(
            "kept %d of %d interactions after removing %d exact repeats and %d-core filtering",
            len(users), n_raw, n_dupes, cfg.min_core,
        )
        split = None

    order = protocol.chronological_order(users, timestamps)
    users, items, timestamps = users[order], items[order], timestamps[order]
    split = protocol.leave_one_out(users) if split is None else split[order]
    n_items = len(item_vocab) if not raw.keep_ids else int(items.max())
    n_users = len(user_vocab) if not raw.keep_ids else int(users.max())

    interactions = pa.table(
        {
            "user": pa.array(users, pa.int32()),
            "item": pa.array(items, pa.int32()),
            "timestamp": pa.array(timestamps, pa.int64()),
            "split": pa.array(SPLIT_NAMES[split], pa.string()),
        },
        schema=schemas.INTERACTIONS,
    )
    users_table = pa.table(
        {"user": pa.array(np.arange(1, len(user_vocab) + 1), pa.int32()), "raw_id": user_vocab}
        if not raw.keep_ids
        else {"user": pa.array(user_vocab, pa.int32()), "raw_id": pc.cast(pa.array(user_vocab), pa.string())},
        schema=schemas.USERS,
    )
    items_table = _items_table(raw, item_vocab, cfg)
    if raw.candidates is not None:
        candidates = _stored_candidates(raw, users, items, split, cfg)
    else:
        candidates = _sample_candidates(users, items, split, n_items, cfg)
    attributes = raw.attributes if cfg.attributes is None else cfg.attributes
    relation_types, relations, notes = build_relations(
        items_table, raw.links if cfg.item_links else raw.links.slice(0, 0), raw.shared, attributes, cfg.max_items_per_value
    )
    stats = _stats(interactions, n_users, n_items, relation_types, relations, notes)
    return Ingested(interactions, users_table, items_table, relation_types, relations, candidates, stats)


def _keep_ids(raw: pa.ChunkedArray, where, what: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        ids = pc.cast(raw, pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        raise DataError(f"{where}: {what} ids must be integers for a pre-split dataset") from None
    if ids.min() < 1:
        row = int(np.argmin(ids))
        raise DataError(f"{where}: row {row + 1}: {what} id {ids[row]} must be >= 1 (0 is padding)")
    return ids.astype(np.int32), np.unique(ids)


def _split_codes(col: pa.ChunkedArray) -> np.ndarray:
    codes = pc.index_in(col, value_set=pa.array(schemas.SPLITS)).to_numpy(zero_copy_only=False)
    return codes.astype(np.int8)


def _items_table(raw: RawDataset, item_vocab, cfg: IngestConfig) -> pa.Table:
    """Kept items in id order, joined with the reader's item columns, with rendered text."""
    meta = raw.items
    raw_ids = pa.array(item_vocab).cast(pa.string()) if raw.keep_ids else item_vocab
    pos = pc.index_in(raw_ids, value_set=meta.column("raw_id"))
    columns = {
        "item": pa.array(np.asarray(item_vocab, np.int32) if raw.keep_ids else np.arange(1, len(raw_ids) + 1), pa.int32()),
        "raw_id": raw_ids,
    }
    for name in meta.column_names:
        if name != "raw_id":
            columns[name] = pc.take(meta.column(name), pos)
    table = pa.table(columns)
    if "title" not in table.column_names:
        table = table.append_column("title", pa.nulls(table.num_rows, pa.string()))
    texts = render_texts(table, cfg.text_template)
    titles = table.column("title").to_pylist()
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty and cfg.text_fallback == "title":
        for i in empty:
            texts[i] = (titles[i] or "").strip()
        empty = [i for i in empty if not texts[i]]
    if empty:
        ids = ", ".join(str(raw_ids[i].as_py()) for i in empty[:5])
        raise DataError(
            f"{raw.files.get('items', 'the item metadata')}: {len(empty)} item(s) have no text"
            f"{' and no title' if cfg.text_fallback == 'title' else ''} (raw ids {ids}{', ...' if len(empty) > 5 else ''}). "
            "Add their metadata, or change `ingest.text_template` / `ingest.text_fallback`."
        )
    fixed = ["item", "raw_id", "title"]
    rest = [c for c in table.column_names if c not in fixed]
    return table.select(fixed + rest).append_column("text", pa.array(texts, pa.string())).select(fixed + ["text"] + rest)


def _sample_candidates(users, items, split, n_items: int, cfg: IngestConfig) -> pa.Table:
    rng = np.random.default_rng(cfg.seed)
    seen = protocol.UserItemSet(users, items, n_items)
    rows = np.flatnonzero(split != protocol.TRAIN)
    rows = rows[np.lexsort((users[rows], split[rows]))]  # dev rows then test rows, by user
    try:
        negatives = protocol.sample_negatives(rng, users[rows], seen, cfg.n_negatives)
    except ValueError as exc:
        bad = np.unique(users[rows][np.asarray(exc.args[0])])
        raise DataError(
            f"{len(bad)} user(s) (e.g. user {bad[0]}) touched all but fewer than {cfg.n_negatives} of the {n_items} items, "
            "so they cannot get that many distinct negatives. Lower `ingest.n_negatives`."
        ) from None
    return _candidates_table(users[rows], split[rows], items[rows], negatives, cfg.n_negatives)


def _candidates_table(users, split, targets, negatives: np.ndarray, k: int) -> pa.Table:
    flat = pa.array(negatives.reshape(-1).astype(np.int32, copy=False))
    return pa.table(
        {
            "user": pa.array(users, pa.int32()),
            "split": pa.array(SPLIT_NAMES[split], pa.string()),
            "target": pa.array(targets, pa.int32()),
            "negatives": pa.FixedSizeListArray.from_arrays(flat, k),
        },
        schema=schemas.candidates_schema(k),
    )


def _stored_candidates(raw: RawDataset, users, items, split, cfg: IngestConfig) -> pa.Table:
    """Candidates a pre-split dataset ships (ReChorus dev/test neg_items), kept exactly."""
    cand = raw.candidates
    negatives = np.asarray(cand.column("negatives").combine_chunks().flatten().to_numpy(), np.int32)
    k = len(negatives) // max(cand.num_rows, 1)
    table = _candidates_table(
        cand.column("user").to_numpy().astype(np.int32),
        _split_codes(cand.column("split")),
        cand.column("target").to_numpy().astype(np.int32),
        negatives.reshape(cand.num_rows, k),
        k,
    )
    n_items = int(items.max())
    if negatives.size and (negatives.max() > n_items or negatives.min() < 1):
        raise DataError(
            f"{raw.files.get('candidates', 'the candidates')}: negatives name items outside 1..{n_items}; "
            "the dev/test files do not match train.csv"
        )
    return table


def _stats(interactions: pa.Table, n_users, n_items, relation_types, relations, notes) -> dict:
    split = interactions.column("split")
    ts = interactions.column("timestamp")
    counts = relations.group_by("relation").aggregate([("head", "count")])
    by_id = dict(zip(counts.column("relation").to_pylist(), counts.column("head_count").to_pylist()))
    names = relation_types.column("name").to_pylist()

    def iso(t):
        return datetime.fromtimestamp(int(t), tz=timezone.utc).strftime("%Y-%m-%d")

    return {
        "users": int(n_users),
        "items": int(n_items),
        "interactions": interactions.num_rows,
        "splits": {s: int(pc.sum(pc.equal(split, s)).as_py() or 0) for s in schemas.SPLITS},
        "relation_types": len(names) - 1,
        "relations": {names[i]: int(by_id.get(i, 0)) for i in range(1, len(names))},
        "time_span": {"first": iso(pc.min(ts).as_py()), "last": iso(pc.max(ts).as_py())},
        "notes": notes,
    }
