"""Raw dataset -> canonical tables: the whole protocol of method doc §2 in one function."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lrd import schemas
from lrd.config.ingest import IngestConfig
from lrd.data import protocol, sampling
from lrd.data.readers.base import RawDataset
from lrd.data.relations import build_relations
from lrd.data.tables import DatasetTables
from lrd.data.text import render_texts
from lrd.errors import DataError

log = logging.getLogger(__name__)

SPLIT_NAMES = np.array(schemas.SPLITS, dtype=object)
# Evaluation negatives per dev/test row when the dataset stores none and params.yaml says null.
DEFAULT_NEGATIVES = 99
# What can be wrong with stored candidates, and why it matters (repeats are the reference's own
# habit: its Amazon files repeat a negative in most rows, and ranking counts each copy).
CANDIDATE_ISSUES = {
    "repeated_negatives": "a repeated negative is ranked once per copy",
    "target_in_negatives": "the target then competes with itself, and ties count against it, so its rank is wrong",
    "interacted_negatives": "an item the user has interacted with is not a fair negative",
    "several_rows_per_user": "the user is evaluated more than once in that split",
}


def ingest(raw: RawDataset, cfg: IngestConfig) -> DatasetTables:
    inter = raw.interactions
    where = raw.files.get("interactions", "the interactions")
    if inter.num_rows == 0:
        raise DataError(f"{where}: no interactions in the file")
    timestamps = inter.column("timestamp").to_numpy().astype(np.int64)
    n_raw = inter.num_rows

    if raw.keep_ids:  # pre-split dataset: keep its split and candidates exactly
        users, user_vocab = _presplit_ids(inter.column("user"), where, "user")
        items, item_vocab = _presplit_ids(inter.column("item"), where, "item")
        split = _split_codes(inter.column("split"))
    else:
        users, user_vocab = protocol.encode_ids(inter.column("user"))
        items, item_vocab = protocol.encode_ids(inter.column("item"))
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
    n_users, n_items = len(user_vocab), len(item_vocab)
    if not (split != protocol.TRAIN).any():
        raise DataError(
            f"{raw.files.get('candidates', where)}: no dev or test interaction, so nothing to evaluate on"
            + (": the dev/test files hold no rows." if raw.keep_ids else
               f" (no user has two interactions after {cfg.min_core}-core filtering). Check the file or `ingest.min_core`.")
        )

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
        {"user": pa.array(np.arange(1, n_users + 1), pa.int32()), "raw_id": pc.cast(user_vocab, pa.string())},
        schema=schemas.USERS,
    )
    template = cfg.text_template if cfg.text_template is not None else raw.text_template
    items_table = _items_table(raw, item_vocab, template, cfg)
    if raw.candidates is not None:
        candidates, candidate_stats = _stored_candidates(raw, users, items, user_vocab, item_vocab, cfg)
    else:
        candidates, candidate_stats = _sample_candidates(users, items, split, n_items, cfg)
    attributes = raw.attributes if cfg.attributes is None else cfg.attributes
    relation_types, relations, notes = build_relations(
        items_table, raw.links if cfg.item_links else raw.links.slice(0, 0), raw.shared, attributes, cfg.max_items_per_value
    )
    stats = _stats(interactions, n_users, n_items, relation_types, relations, {**raw.notes, **notes})
    kinds = set(relation_types.column("kind").to_pylist())
    stats.update(
        n_negatives=candidate_stats["n_negatives"],
        candidates=candidate_stats,
        text_template=template,
        # The format's default for the top-level `model_relations: null`, among the kinds this dataset has.
        model_relations=[k for k in raw.model_relations if k in kinds],
    )
    return DatasetTables(interactions, users_table, items_table, relation_types, relations, candidates, stats)


def _presplit_ids(column: pa.ChunkedArray, where, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes 1..n and the ids in code order (int64): the ids themselves when they are 1..n.

    Ids with gaps (10, 20, ..., 400) are renumbered in id order: sizing tables by the largest
    id would invent items that do not exist (and draw negatives from them).
    """
    try:
        values = pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(f"{where}: {what} ids must be integers for a pre-split dataset") from None
    vocab, inverse = np.unique(values, return_inverse=True)
    if vocab[0] != 1 or vocab[-1] != len(vocab):
        log.warning(
            "%s: the %d %s ids are not 1..%d (they run from %d to %d); renumbered 1..%d in id order, "
            "the %ss table's raw_id keeps each file id", where, len(vocab), what, len(vocab), vocab[0], vocab[-1], len(vocab), what,
        )
    return (inverse.reshape(-1) + 1).astype(np.int32), vocab


def _lookup(vocab: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes 1..n, found) of integer ids in the sorted id vocabulary."""
    pos = np.minimum(np.searchsorted(vocab, values), len(vocab) - 1)
    return (pos + 1).astype(np.int32), vocab[pos] == values


def _split_codes(col: pa.ChunkedArray) -> np.ndarray:
    codes = pc.index_in(col, value_set=pa.array(schemas.SPLITS)).to_numpy(zero_copy_only=False)
    return codes.astype(np.int8)


def _items_table(raw: RawDataset, item_vocab, template: str, cfg: IngestConfig) -> pa.Table:
    """Kept items in id order, joined with the reader's item columns, with rendered text."""
    meta = raw.items
    if "item_id" in meta.column_names:  # pre-split: joined on the split files' integer ids
        keys = pa.array(item_vocab, pa.int64())
        pos = pc.index_in(keys, value_set=meta.column("item_id"))
        raw_ids = pc.coalesce(pc.take(meta.column("raw_id"), pos), pc.cast(keys, pa.string()))
    else:
        raw_ids = item_vocab
        pos = pc.index_in(raw_ids, value_set=meta.column("raw_id"))
    columns = {"item": pa.array(np.arange(1, len(raw_ids) + 1), pa.int32()), "raw_id": raw_ids}
    for name in meta.column_names:
        if name not in ("raw_id", "item_id"):
            columns[name] = pc.take(meta.column(name), pos)
    table = pa.table(columns)
    if "title" not in table.column_names:
        table = table.append_column("title", pa.nulls(table.num_rows, pa.string()))
    texts = render_texts(table, template)
    titles = table.column("title").to_pylist()
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty and cfg.text_fallback == "title":
        for i in empty:
            texts[i] = (titles[i] or "").strip()
        empty = [i for i in empty if not texts[i]]
    if empty:
        # Blame the file the text comes from (a ReChorus .text file, not item_meta.csv).
        source = raw.files.get("text") or raw.files.get("items", "the item metadata")
        ids = ", ".join(str(raw_ids[i].as_py()) for i in empty[:5])
        raise DataError(
            f"{source}: {len(empty)} item(s) have no text{' and no title' if cfg.text_fallback == 'title' else ''} "
            f"(raw ids {ids}{', ...' if len(empty) > 5 else ''}). "
            "Add their text there, or change `ingest.text_template` / `ingest.text_fallback`."
        )
    fixed = ["item", "raw_id", "title"]
    rest = [c for c in table.column_names if c not in fixed]
    return table.select(fixed + rest).append_column("text", pa.array(texts, pa.string())).select(fixed + ["text"] + rest)


# --------------------------------------------------------------------------------------------
# candidates


def _sample_candidates(users, items, split, n_items: int, cfg: IngestConfig) -> tuple[pa.Table, dict]:
    k = cfg.n_negatives or DEFAULT_NEGATIVES
    rng = np.random.default_rng(cfg.seed)
    seen = sampling.UserItemSet(users, items, n_items)
    rows = np.flatnonzero(split != protocol.TRAIN)
    rows = rows[np.lexsort((users[rows], split[rows]))]  # dev rows then test rows, by user
    try:
        negatives = sampling.sample_negatives(rng, users[rows], seen, k)
    except ValueError as exc:
        bad = np.unique(users[rows][np.asarray(exc.args[0])])
        raise DataError(
            f"{len(bad)} user(s) (e.g. user {bad[0]}) touched all but fewer than {k} of the {n_items} items, "
            "so they cannot get that many distinct negatives. Lower `ingest.n_negatives`."
        ) from None
    # Distinct, never the user's items, one row per user and split: nothing to count.
    stats = {"source": "sampled", "rows": len(rows), "n_negatives": k, **{f"rows_with_{name}": 0 for name in CANDIDATE_ISSUES}}
    return _candidates_table(users[rows], split[rows], items[rows], negatives, k), stats


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


def _stored_candidates(raw: RawDataset, users, items, user_vocab, item_vocab, cfg: IngestConfig) -> tuple[pa.Table, dict]:
    """Candidates a pre-split dataset ships (ReChorus dev/test neg_items), kept exactly, checked and counted."""
    cand = raw.candidates
    n = cand.num_rows
    negatives_list = cand.column("negatives").combine_chunks()
    raw_negatives = negatives_list.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    k = len(raw_negatives) // max(n, 1)
    where = _row_locator(raw, cand)
    negatives, found = _lookup(item_vocab, raw_negatives)
    if not found.all():
        bad = np.flatnonzero(~found)
        raise DataError(
            f"{where(bad[0] // k)}: neg_items names item {raw_negatives[bad[0]]}, which no row of the train/dev/test files has "
            f"({len(np.unique(bad // k))} of {n} dev/test rows name such ids). Negatives must be items of this dataset: "
            "fix the files (or use the dev/test files written with this train file)."
        )
    negatives = negatives.reshape(n, k)
    cand_users, _ = _lookup(user_vocab, cand.column("user").to_numpy().astype(np.int64))
    targets, _ = _lookup(item_vocab, cand.column("target").to_numpy().astype(np.int64))
    split = _split_codes(cand.column("split"))
    issues = _candidate_issues(users, items, len(item_vocab), cand_users, split, targets, negatives)
    for name, rows in issues.items():
        if len(rows) and name not in cfg.accept_candidates:
            raise DataError(
                f"{where(rows[0])}: {_describe(name, rows[0], cand, negatives, targets, item_vocab)} "
                f"({len(rows)} of {n} dev/test rows). {CANDIDATE_ISSUES[name][0].upper()}{CANDIDATE_ISSUES[name][1:]}: "
                f"fix the files, or accept such rows with `ingest.accept_candidates: [{', '.join([*cfg.accept_candidates, name])}]`."
            )
    counts = {f"rows_with_{name}": len(rows) for name, rows in issues.items()}
    log.info(
        "stored candidates: %d rows of 1 target + %d negatives; %d repeat a negative, %d contain the target, "
        "%d hold items the user interacted with, %d belong to users with several rows in a split",
        n, k, *counts.values(),
    )
    stats = {"source": "stored", "rows": n, "n_negatives": k, **counts, "accepted": list(cfg.accept_candidates)}
    return _candidates_table(cand_users, split, targets, negatives, k), stats


def _candidate_issues(users, items, n_items, cand_users, split, targets, negatives) -> dict[str, np.ndarray]:
    """Rows (of the candidates) with each of CANDIDATE_ISSUES, vectorised over rows."""
    ordered = np.sort(negatives, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
    is_target = negatives == targets[:, None]
    interacted = sampling.UserItemSet(users, items, n_items).contains(cand_users, negatives) & ~is_target
    per_user = np.zeros(len(cand_users), dtype=bool)
    for code in np.unique(split):
        rows = split == code
        count = np.bincount(cand_users[rows])
        per_user[rows] = count[cand_users[rows]] > 1
    found = {"repeated_negatives": repeated, "target_in_negatives": is_target.any(axis=1),
             "interacted_negatives": interacted.any(axis=1), "several_rows_per_user": per_user}
    return {name: np.flatnonzero(found[name]) for name in CANDIDATE_ISSUES}


def _describe(name: str, row: int, cand: pa.Table, negatives, targets, item_vocab) -> str:
    raw = item_vocab[negatives[row] - 1]
    if name == "repeated_negatives":
        ordered = np.sort(raw)
        return f"neg_items repeats item {ordered[1:][ordered[1:] == ordered[:-1]][0]}"
    if name == "target_in_negatives":
        return f"neg_items holds the row's own target (item {item_vocab[targets[row] - 1]})"
    if name == "interacted_negatives":
        return f"neg_items holds items that user {cand.column('user')[row].as_py()} has interacted with"
    return f"user {cand.column('user')[row].as_py()} has more than one {cand.column('split')[row].as_py()} row"


def _row_locator(raw: RawDataset, cand: pa.Table):
    """'<file>: line <n>' of a candidates row, from the reader's file/line columns."""
    files, lines = (cand.column(c) if c in cand.column_names else None for c in ("file", "line"))

    def where(row) -> str:
        row = int(row)
        if files is None or lines is None:
            return f"{raw.files.get('candidates', 'the candidates')}: row {row + 1}"
        return f"{files[row].as_py()}: line {lines[row].as_py()}"

    return where


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
