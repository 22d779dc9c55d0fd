"""ReChorus-style CSV folders (the format the LRD reference code reads), already split.

    train.csv       user_id \\t item_id \\t time, with that header; ids are integers >= 1.
    dev.csv         the same plus `neg_items`, a Python list literal of item ids: [12, 57, 3]
    test.csv        (the fixed evaluation negatives of each row, all of one length).
    item_meta.csv   optional: item_id, attribute columns `i_<name>` (integer codes, 0 = missing)
                    and relation columns `r_<name>` (Python list literals of item ids).
    item_text.csv   optional, or any `*.text` file (the reference's `<DS>.text`): item id \\t text,
                    with or without a header line.

The split, the ids and the negatives are kept exactly as stored. Each `i_<name>` column becomes
an item column `<name>` (the code as a string) and an attribute relation; each `r_<name>`
column an item-item relation `<name>`. ReChorus metadata has no titles, so the item text is
put in the `title` column: templates such as "{title}" read it, and items without text have
a null title.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lrd.config import AttributeConfig, IngestConfig
from lrd.data.readers.base import LINKS_SCHEMA, RawDataset, find_one, read_bytes, read_delimited
from lrd.errors import DataError

SPLITS = ("train", "dev", "test")


def read_rechorus(folder: Path, cfg: IngestConfig) -> RawDataset:
    paths = {s: find_one(folder, [f"{s}.csv"], f"ReChorus {s} split ({s}.csv)") for s in SPLITS}
    splits = {s: _read_split(paths[s], with_negatives=s != "train") for s in SPLITS}
    interactions = pa.concat_tables(
        pa.table(
            {
                "user": pc.cast(t.column("user_id"), pa.string()),
                "item": pc.cast(t.column("item_id"), pa.string()),
                "timestamp": t.column("time"),
                "split": pa.array([s] * t.num_rows, pa.string()),
            }
        )
        for s, t in splits.items()
    )
    candidates = pa.concat_tables(_candidates(paths[s], splits[s], s, cfg.n_negatives) for s in ("dev", "test"))
    files = {"interactions": paths["train"], "candidates": paths["test"]}
    item_ids = pc.unique(pa.concat_arrays([t.column("item_id").combine_chunks() for t in splits.values()]))

    meta, links, attributes = pa.table({"item_id": pa.array([], pa.int64())}), LINKS_SCHEMA.empty_table(), []
    meta_path = find_one(folder, ["item_meta.csv"], "ReChorus item metadata (item_meta.csv)", required=False)
    if meta_path is not None:
        meta, links, attributes = _read_item_meta(meta_path, item_ids)
        files["items"] = meta_path
    text_path = find_one(folder, ["item_text.csv", "*.text"], "ReChorus item text (item_text.csv or *.text)", required=False)
    text = _read_item_text(text_path) if text_path is not None else None
    return RawDataset(
        interactions=interactions,
        items=_items_table(item_ids, meta, text),
        links=links,
        candidates=candidates,
        attributes={name: AttributeConfig() for name in attributes},
        keep_ids=True,
        files=files,
    )


def _read_split(path: Path, with_negatives: bool) -> pa.Table:
    types = {"user_id": pa.int64(), "item_id": pa.int64(), "time": pa.int64()}
    if with_negatives:
        types["neg_items"] = pa.string()
    return read_delimited(path, types)


def _candidates(path: Path, table: pa.Table, split: str, n_negatives: int) -> pa.Table:
    negatives = parse_id_lists(table.column("neg_items"), path, "neg_items")
    lengths = pc.list_value_length(negatives).to_numpy(zero_copy_only=False)
    wrong = np.flatnonzero(lengths != n_negatives)
    if len(wrong):
        row = int(wrong[0])
        raise DataError(
            f"{path}: line {row + 2}: neg_items has {lengths[row]} ids, expected {n_negatives} (`ingest.n_negatives`). "
            f"Set `ingest.n_negatives` to this dataset's value in params.yaml ({len(wrong)} of {len(lengths)} rows differ)."
        )
    return pa.table(
        {
            "user": table.column("user_id"),
            "split": pa.array([split] * table.num_rows, pa.string()),
            "target": table.column("item_id"),
            "negatives": negatives,
        }
    )


def parse_id_lists(column: pa.ChunkedArray, path: Path, name: str) -> pa.ListArray:
    """Python list literals of integers ("[12, 57, 3]", "[]") -> list<int64>, without a Python loop.

    numpy's "[12 57  3]" is read too. Line numbers in errors assume a header line (row 0 is line 2).
    """
    text = pc.utf8_trim(column.combine_chunks(), "[] ")
    compact = pc.replace_substring(text, ", ", ",")
    if pc.any(pc.match_substring(compact, " ")).as_py():  # numpy style or odd spacing: the slower regex split
        parts = pc.split_pattern_regex(text, r"\s*,\s*|\s+")
    else:
        parts = pc.split_pattern(compact, ",")
    parts = pc.if_else(pc.equal(text, ""), pa.scalar([], pa.list_(pa.string())), parts)
    lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(parts)
    try:
        values = pc.cast(flat, pa.int64())
    except pa.ArrowInvalid:
        # 18 digits at most, so an int64 overflow is found too.
        valid = pc.match_substring_regex(flat, r"^-?\d{1,18}$").to_numpy(zero_copy_only=False)
        row = pc.list_parent_indices(parts)[int(np.argmin(valid))].as_py()
        raise DataError(
            f"{path}: line {row + 2}, column `{name}`: {column[row].as_py()!r} is not a list of integer ids "
            "like [12, 57, 3]. Fix that line."
        ) from None
    offsets = pa.array(np.r_[0, np.cumsum(lengths)].astype(np.int32))
    return pa.ListArray.from_arrays(offsets, values)


def _read_item_meta(path: Path, interaction_items: pa.Array) -> tuple[pa.Table, pa.Table, list[str]]:
    """(item_id + one string column per i_ attribute, item-item links, attribute names)."""
    names = read_bytes(path).split(b"\n", 1)[0].decode("utf-8").rstrip("\r").split("\t")
    attrs = [n for n in names if n.startswith("i_")]
    rels = [n for n in names if n.startswith("r_")]
    table = read_delimited(path, {"item_id": pa.int64(), **{a: pa.int64() for a in attrs}, **{r: pa.string() for r in rels}})
    ids = table.column("item_id").combine_chunks()
    meta = {"item_id": ids}
    for a in attrs:
        code = table.column(a)
        meta[a[2:]] = pc.if_else(pc.equal(code, 0), pa.scalar(None, pa.string()), pc.cast(code, pa.string()))
    known = pc.unique(pa.concat_arrays([interaction_items, ids]))
    links = [_relation_links(path, r, ids, table.column(r), known) for r in rels]
    return pa.table(meta), pa.concat_tables([LINKS_SCHEMA.empty_table(), *links]), [a[2:] for a in attrs]


def _relation_links(path: Path, column_name: str, heads: pa.Array, column: pa.ChunkedArray, known: pa.Array) -> pa.Table:
    lists = parse_id_lists(column, path, column_name)
    tails = lists.flatten()
    owner = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    unknown = np.flatnonzero(~pc.is_in(tails, value_set=known).to_numpy(zero_copy_only=False))
    if len(unknown):
        bad = unknown[0]
        raise DataError(
            f"{path}: line {owner[bad] + 2}, column `{column_name}`: an id in a relation that names no item "
            f"({tails[int(bad)].as_py()}; items are the ids of train/dev/test.csv and item_meta.csv). Fix the list."
        )
    return pa.table(
        [
            pc.cast(pc.take(heads, pa.array(owner)), pa.string()),
            pa.array([column_name[2:]] * len(tails), pa.string()),
            pc.cast(tails, pa.string()),
        ],
        schema=LINKS_SCHEMA,
    )


def _read_item_text(path: Path) -> pa.Table:
    """item id (int64) and text; the first line is a header when its first field is not an integer."""
    data = read_bytes(path)
    first = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r").split("\t")
    types = {"id": pa.int64(), "text": pa.string()}
    try:
        if first[0].strip().lstrip("-").isdigit():
            return read_delimited(path, types, header=["id", "text"], data=data)
        if len(first) != 2:
            raise DataError(f"{path}: line 1: expected two tab-separated columns (id, text), got {len(first)}. Fix the header.")
        return read_delimited(path, types, data=data, rename={first[0]: "id", first[1]: "text"})
    except DataError as exc:
        # A text file keyed by raw ids (asins) needs mapping first; say so beside the line.
        raise DataError(f"{exc} Ids must be the integer item ids of train.csv.") from None


def _items_table(interaction_items: pa.Array, meta: pa.Table, text: pa.Table | None) -> pa.Table:
    """One row per item id of the interactions or item_meta, ascending."""
    meta_ids = meta.column("item_id").combine_chunks()
    ids = pc.unique(pa.concat_arrays([meta_ids, interaction_items]))
    ids = pc.take(ids, pc.sort_indices(ids))
    pos = pc.index_in(ids, value_set=meta_ids)
    title = pa.nulls(len(ids), pa.string())
    if text is not None:
        found = pc.take(text.column("text"), pc.index_in(ids, value_set=text.column("id").combine_chunks()))
        title = pc.if_else(pc.equal(pc.utf8_trim_whitespace(found), ""), pa.scalar(None, pa.string()), found)
    columns = {"raw_id": pc.cast(ids, pa.string()), "title": title}
    for name in meta.column_names:
        if name != "item_id":
            columns[name] = pc.take(meta.column(name), pos)
    return pa.table(columns)
