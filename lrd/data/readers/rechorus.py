"""ReChorus-style CSV folders (the format the LRD reference code reads), already split.

    train.csv        user_id \\t item_id \\t time, with that header; ids are integers.
    dev.csv          the same plus `neg_items`, a Python list literal of item ids: [12, 57, 3]
    test.csv         (the fixed evaluation negatives of each row, all of one length).
    item_meta.csv    optional: item_id, attribute columns `i_<name>` (codes; 0 or empty = missing)
                     and relation columns `r_<name>` (Python list literals of item ids).
    <DS>.item2index  optional (the reference's): raw id \\t integer id, no header, e.g. an Amazon
                     asin and the id the split files use for it.
    <DS>.text        optional item text, id \\t text, with or without a header line, keyed by the
    item_text.csv    integer ids or by the raw ids of <DS>.item2index (the reference's `.text`
                     is). When both files are there item_text.csv is read (and the log says so).

The split and the negatives are kept exactly as stored, repeats within a row included (the
reference's Amazon files repeat negatives in most rows); ingest counts and checks them. Each
`i_<name>` column becomes an item column `<name>` and an attribute relation; each `r_<name>`
column an item-item relation `<name>` (the reference's complement / substitute lists).
ReChorus metadata has no titles, so the item text is put in the `title` column: templates
such as "{title}" read it, and items without text have a null title. With <DS>.item2index,
the items' raw_id is the raw id it names (the asin), else the integer id.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lrd.config.ingest import AttributeConfig, IngestConfig
from lrd.data.readers.base import (
    LINKS_SCHEMA, RawDataset, attribute_name, csv_lines, duplicate_ids, find_one, first_line, read_bytes, read_delimited,
    unix_seconds,
)
from lrd.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
_INTEGER = r"^\s*-?\d{1,18}\s*$"  # 18 digits at most: always fits int64


def read_rechorus(folder: Path, cfg: IngestConfig) -> RawDataset:
    paths = {s: find_one(folder, [f"{s}.csv"], f"ReChorus {s} split ({s}.csv)") for s in SPLITS}
    splits = {s: _read_split(paths[s], with_negatives=s != "train") for s in SPLITS}
    for s, t in splits.items():
        if t.num_rows == 0:
            raise DataError(f"{paths[s]}: no rows after the header; the {s} split needs its interactions. Fix or replace the file.")
    splits["train"], repeats = _drop_repeats(splits["train"], paths["train"])
    _check_time_order(splits, paths)
    interactions = pa.concat_tables(
        pa.table(
            {
                "user": t.column("user_id"),
                "item": t.column("item_id"),
                "timestamp": t.column("time"),
                "split": pa.array([s] * t.num_rows, pa.string()),
            }
        )
        for s, t in splits.items()
    )
    candidates = _check_lengths(pa.concat_tables(_candidates(paths[s], splits[s], s) for s in ("dev", "test")), cfg.n_negatives)
    item_ids = pc.unique(pa.concat_arrays([t.column("item_id").combine_chunks() for t in splits.values()]))
    files = {"interactions": paths["train"], "candidates": paths["test"]}

    index_path = find_one(folder, ["*.item2index"], "ReChorus item index (<DS>.item2index)", required=False)
    item2index = _read_item2index(index_path, item_ids) if index_path is not None else None
    meta, links, attributes = pa.table({"item_id": pa.array([], pa.int64())}), None, []
    meta_path = find_one(folder, ["item_meta.csv"], "ReChorus item metadata (item_meta.csv)", required=False)
    if meta_path is not None:
        meta, links, attributes = _read_item_meta(meta_path, item_ids)
        files["items"] = meta_path
    text_path = _text_file(folder)
    known = pc.unique(pa.concat_arrays([item_ids, meta.column("item_id").combine_chunks()]))
    text = _read_item_text(text_path, known, item2index) if text_path is not None else None
    files["text"] = text_path or folder  # where an item's missing text is to be fixed
    items = _items_table(item_ids, meta, text, item2index)
    return RawDataset(
        interactions=interactions,
        items=items,
        links=_raw_links(links, items) if links is not None else LINKS_SCHEMA.empty_table(),
        candidates=candidates,
        attributes={name: AttributeConfig() for name in attributes},
        text_template="{title}",
        model_relations=("attribute", "item-item"),  # the reference's: attributes + complement / substitute
        keep_ids=True,
        files=files,
        notes={"train_rows_repeated_dropped": repeats} if repeats else {},
    )


# --------------------------------------------------------------------------------------------
# splits and candidates


def _read_split(path: Path, with_negatives: bool) -> pa.Table:
    """user_id, item_id (int64), time (unix seconds), line [, neg_items]; rows in time order if time was converted."""
    types = {"user_id": pa.int64(), "item_id": pa.int64(), "time": pa.int64()}
    if with_negatives:
        types["neg_items"] = pa.string()
    data = read_bytes(path)
    table = read_delimited(path, types, data=data, required=types, with_lines=True)
    seconds, order = unix_seconds(table.column("time"), path, "time", csv_lines(data))
    table = table.set_column(table.schema.get_field_index("time"), "time", seconds)
    return table if order is None else table.take(pa.array(order))


def _drop_repeats(train: pa.Table, path: Path) -> tuple[pa.Table, int]:
    """Train rows that repeat an earlier row exactly (user, item, time) are dropped, as the protocol
    drops exact repeats, and the log says how many."""
    keys = np.stack([train.column(c).to_numpy() for c in ("user_id", "item_id", "time")], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    if len(first) == train.num_rows:
        return train, 0
    keep = np.sort(first)
    dropped = np.setdiff1d(np.arange(train.num_rows), keep)
    log.warning("%s: %d row(s) repeat an earlier row exactly (user, item, time; first at line %d): dropped, as the protocol "
                "drops exact repeats", path, len(dropped), train.column("line")[int(dropped[0])].as_py())
    return train.take(pa.array(keep)), len(dropped)


def _check_time_order(splits: dict[str, pa.Table], paths: dict[str, Path]) -> None:
    """Each user's rows must run train, then dev, then test in time (ties allowed), with times in
    unix seconds after 1970: a history that holds the future, or a time of -100, is an error."""
    for s, t in splits.items():
        times = t.column("time").to_numpy()
        if (times < 0).any():
            row = int(np.flatnonzero(times < 0)[0])
            raise DataError(f"{paths[s]}: line {t.column('line')[row].as_py()}, column `time`: {times[row]} is before 1970; "
                            "times are unix seconds. Fix that line.")
    for earlier, later in (("train", "dev"), ("dev", "test"), ("train", "test")):
        a, b = splits[earlier], splits[later]
        latest = pa.table({"user_id": a.column("user_id"), "time": a.column("time"), "line": a.column("line")}) \
            .group_by("user_id").aggregate([("time", "max")])
        joined = pa.table({"user_id": b.column("user_id"), "t_later": b.column("time"), "line_later": b.column("line")}) \
            .join(latest, "user_id")
        bad = np.flatnonzero(joined.column("t_later").to_numpy() < joined.column("time_max").to_numpy())
        if len(bad):
            row = int(bad[0])
            user = joined.column("user_id")[row].as_py()
            t_user = a.filter(pc.equal(a.column("user_id"), user))
            at = int(np.argmax(t_user.column("time").to_numpy()))
            raise DataError(
                f"{paths[later]}: line {joined.column('line_later')[row].as_py()}: user {user}'s {later} row is at time "
                f"{joined.column('t_later')[row].as_py()}, before their {earlier} row at {t_user.column('time')[at].as_py()} "
                f"({paths[earlier].name} line {t_user.column('line')[at].as_py()}; {len(bad)} such row{'s' * (len(bad) > 1)}). Each user's rows must run "
                "train, dev, test in time: fix the times, or split the data again."
            )


def _candidates(path: Path, table: pa.Table, split: str) -> pa.Table:
    return pa.table(
        {
            "user": table.column("user_id"),
            "split": pa.array([split] * table.num_rows, pa.string()),
            "target": table.column("item_id"),
            "negatives": parse_id_lists(table.column("neg_items"), path, "neg_items", table.column("line")),
            "file": pa.array([str(path)] * table.num_rows, pa.string()).dictionary_encode(),
            "line": table.column("line"),
        }
    )


def _check_lengths(candidates: pa.Table, expected: int | None) -> pa.Table:
    """Every row needs the same number of negatives: `ingest.n_negatives`, or (null) the first row's."""
    lengths = pc.list_value_length(candidates.column("negatives")).to_numpy(zero_copy_only=False)
    if len(lengths) == 0:
        return candidates
    want = lengths[0] if expected is None else expected
    wrong = np.flatnonzero(lengths != want)
    where = lambda row: f"{candidates.column('file')[int(row)].as_py()}: line {candidates.column('line')[int(row)].as_py()}"  # noqa: E731
    if want == 0:
        raise DataError(f"{where(0)}: neg_items is empty; every dev/test row needs its evaluation negatives.")
    if len(wrong) and expected is None:
        raise DataError(
            f"{where(wrong[0])}: neg_items has {lengths[wrong[0]]} ids, but {where(0)} has {want}; every dev/test row "
            f"needs the same number ({len(wrong)} of {len(lengths)} rows differ). Fix the files."
        )
    if len(wrong):
        raise DataError(
            f"{where(wrong[0])}: neg_items has {lengths[wrong[0]]} ids, expected {expected} (`ingest.n_negatives`). "
            f"Set `ingest.n_negatives` to this dataset's value in params.yaml, or to null to take the files' count "
            f"({len(wrong)} of {len(lengths)} rows differ)."
        )
    return candidates


def parse_id_lists(column: pa.ChunkedArray, path: Path, name: str, lines: pa.ChunkedArray | None = None) -> pa.ListArray:
    """Python list literals of integers ("[12, 57, 3]", "[]") -> list<int64>, without a Python loop.

    numpy's "[12 57  3]" is read too. `lines` gives each row's line in the file (default: row + 2,
    a header and no blank lines).
    """
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    # One bracketed list of ids ("[12, 57, 3]", numpy's "[12 57  3]", "[]"), or an empty field:
    # "[[12, 57]]", "[12, 57" or "12, 57" would otherwise read as the same ids.
    shaped = pc.match_substring_regex(column, r"^\s*(\[\s*(-?\d+(\s*,\s*|\s+))*(-?\d+)?\s*\])?\s*$")
    if pc.all(shaped).as_py() is False:
        row = int(np.argmin(shaped.to_numpy(zero_copy_only=False)))
        line = lines[row].as_py() if lines is not None else row + 2
        raise DataError(
            f"{path}: line {line}, column `{name}`: {column[row].as_py()!r} is not a list of integer ids "
            "like [12, 57, 3]. Fix that line."
        )
    text = pc.utf8_trim(column, "[] ")
    compact = pc.replace_substring(text, ", ", ",")
    if pc.any(pc.match_substring(compact, " ")).as_py():  # numpy style or odd spacing: the slower regex split
        parts = pc.split_pattern_regex(text, r"\s*,\s*|\s+")
    else:
        parts = pc.split_pattern(compact, ",")
    parts = pc.if_else(pc.equal(text, ""), pa.scalar([], pa.list_(pa.string())), parts)
    lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(parts)
    valid = pc.match_substring_regex(flat, r"^-?\d{1,18}$")  # 18 digits at most: an int64 overflow is caught too
    if pc.all(valid).as_py() is False:  # (null for no values at all)
        row = pc.list_parent_indices(parts)[int(np.argmin(valid.to_numpy(zero_copy_only=False)))].as_py()
        line = lines[row].as_py() if lines is not None else row + 2
        raise DataError(
            f"{path}: line {line}, column `{name}`: {column[row].as_py()!r} is not a list of integer ids "
            "like [12, 57, 3]. Fix that line."
        )
    offsets = pa.array(np.r_[0, np.cumsum(lengths)].astype(np.int32))
    return pa.ListArray.from_arrays(offsets, pc.cast(flat, pa.int64()))


# --------------------------------------------------------------------------------------------
# items: <DS>.item2index, item_meta.csv, the text file


def _read_item2index(path: Path, split_items: pa.Array) -> pa.Table:
    """raw_id (string) and item_id (int64), one line per item, every id an item of the splits."""
    data = read_bytes(path)
    first = first_line(path, data).split("\t")
    types = {"raw_id": pa.string(), "item_id": pa.int64()}
    has_header = len(first) == 2 and not pc.match_substring_regex(pa.array([first[1]]), _INTEGER)[0].as_py()
    if has_header:
        table = read_delimited(path, types, data=data, rename={first[0]: "raw_id", first[1]: "item_id"}, required=types)
    else:
        table = read_delimited(path, types, data=data, header=["raw_id", "item_id"], required=types)
    lines = csv_lines(data, has_header)
    table = table.set_column(0, "raw_id", pc.utf8_trim_whitespace(table.column("raw_id")))
    duplicate_ids(table.column("raw_id"), path, "raw id", lines)
    duplicate_ids(table.column("item_id"), path, "integer id", lines)
    stray = np.flatnonzero(~pc.is_in(table.column("item_id"), value_set=split_items).to_numpy(zero_copy_only=False))
    if len(stray):
        row = int(stray[0])
        raise DataError(
            f"{path}: line {lines([row])[0]} maps {table.column('raw_id')[row].as_py()!r} to item {table.column('item_id')[row].as_py()}, "
            f"which no row of train/dev/test.csv has ({len(stray)} such lines). Use the item2index file written with these splits."
        )
    unmapped = len(split_items) - table.num_rows
    if unmapped:
        log.warning("%s: %d item ids of the splits have no raw id here; their raw_id is the integer id", path, unmapped)
    return table


def _read_item_meta(path: Path, interaction_items: pa.Array) -> tuple[pa.Table, pa.Table, list[str]]:
    """(item_id + one string column per i_ attribute, item-item links by integer id, attribute names)."""
    data = read_bytes(path)
    names = first_line(path, data).split("\t")
    attrs = [n for n in names if n.startswith("i_")]
    rels = [n for n in names if n.startswith("r_")]
    # Attribute codes are read as text: integer codes (the reference's) and names both work.
    table = read_delimited(path, {"item_id": pa.int64(), **{c: pa.string() for c in attrs + rels}}, data=data,
                           required=("item_id",))
    lines = csv_lines(data)
    ids = table.column("item_id").combine_chunks()
    duplicate_ids(ids, path, "item_id", lines)
    meta = {"item_id": ids}
    kept = {}  # column -> attribute name
    for a in attrs:
        code = pc.utf8_trim_whitespace(table.column(a))
        # 0 or empty = missing (the reference's coding); so are NaN and friends written by pandas
        missing = pc.is_in(pc.utf8_lower(code), value_set=pa.array(["", "0", "nan", "none", "null", "<na>"]))
        values = pc.if_else(missing, pa.scalar(None, pa.string()), code)
        if values.null_count == len(values):
            log.warning("%s: column `%s` holds no value (empty, 0 or NaN in every row): no attribute relation from it", path, a)
            continue
        # `title` holds the item text here, `raw_id` the item2index id: an i_title must not replace them.
        name = attribute_name(a[2:], meta, path, a)
        meta[name] = values
        kept[a] = name
    known = pc.unique(pa.concat_arrays([interaction_items, ids]))
    for r in rels:
        if not r[2:].strip():
            raise DataError(f"{path}: line 1: column `{r}` has no name. Name it (the relation it holds).")
        if r[2:] in kept.values():  # two relation types of one name: counts and lookups by name would merge them
            raise DataError(f"{path}: line 1: columns `i_{r[2:]}` and `{r}` would both be the relation `{r[2:]}`. Rename one of them.")
    links = [_relation_links(path, r, ids, table.column(r), known, lines) for r in rels]
    empty = pa.table({"head": pa.array([], pa.int64()), "relation": pa.array([], pa.string()), "tail": pa.array([], pa.int64())})
    return pa.table(meta), pa.concat_tables([empty, *links]), list(kept.values())


def _relation_links(path: Path, column_name: str, heads: pa.Array, column: pa.ChunkedArray, known: pa.Array, lines) -> pa.Table:
    lists = parse_id_lists(column, path, column_name, pa.chunked_array([lines(np.arange(len(heads)))]))
    tails = lists.flatten()
    owner = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    unknown = np.flatnonzero(~pc.is_in(tails, value_set=known).to_numpy(zero_copy_only=False))
    if len(unknown):
        bad = unknown[0]
        raise DataError(
            f"{path}: line {lines([owner[bad]])[0]}, column `{column_name}`: an id in a relation that names no item "
            f"({tails[int(bad)].as_py()}; items are the ids of train/dev/test.csv and item_meta.csv). Fix the list."
        )
    return pa.table(
        {
            "head": pc.take(heads, pa.array(owner)),
            "relation": pa.array([column_name[2:]] * len(tails), pa.string()),
            "tail": tails,
        }
    )


def _text_file(folder: Path) -> Path | None:
    ours = find_one(folder, ["item_text.csv"], "ReChorus item text (item_text.csv)", required=False)
    reference = find_one(folder, ["*.text"], "ReChorus item text (<DS>.text)", required=False)
    if ours is not None and reference is not None:
        log.warning("both %s and %s hold item text; reading %s (remove it to read %s)", ours, reference, ours.name, reference.name)
    return ours or reference


def _read_item_text(path: Path, known: pa.Array, item2index: pa.Table | None) -> pa.Table:
    """item_id (int64) and text, from a file keyed by integer ids or by the raw ids of item2index."""
    data = read_bytes(path)
    if not data.strip():
        raise DataError(f"{path}: the file is empty. Add the item text (id \\t text per line) or remove the file.")
    first = first_line(path, data).split("\t")
    raw_ids = item2index.column("raw_id") if item2index is not None else pa.array([], pa.string())
    key = first[0].strip()
    is_data = bool(pc.match_substring_regex(pa.array([key]), _INTEGER)[0].as_py()) or bool(pc.is_in(pa.array([key]), value_set=raw_ids)[0].as_py())
    types = {"key": pa.string(), "text": pa.string()}
    if is_data:
        table = read_delimited(path, types, header=["key", "text"], data=data, required=("key",))
    elif len(first) != 2:
        raise DataError(f"{path}: line 1: expected two tab-separated columns (id, text), got {len(first)}. Fix the header.")
    else:
        table = read_delimited(path, types, data=data, rename={first[0]: "key", first[1]: "text"}, required=("key",))
    lines = csv_lines(data, has_header=not is_data)
    keys = pc.utf8_trim_whitespace(table.column("key")).combine_chunks()
    is_int = pc.match_substring_regex(keys, _INTEGER)
    as_int = pc.cast(pc.if_else(is_int, keys, pa.scalar(None, pa.string())), pa.int64())
    by_id = pc.fill_null(pc.is_in(as_int, value_set=known), False)
    by_raw = pc.is_in(keys, value_set=raw_ids)
    id_hits, raw_hits = pc.sum(by_id).as_py() or 0, pc.sum(by_raw).as_py() or 0
    if id_hits == 0 and raw_hits == 0:
        raise DataError(_unmatched_keys(path, keys, known, item2index))
    # The reference's .text is keyed by raw ids; ours by integer ids: that decides a tie.
    use_raw = raw_hits > id_hits or (raw_hits == id_hits and path.suffix == ".text")
    matched = by_raw if use_raw else by_id
    ids = pc.take(item2index.column("item_id"), pc.index_in(keys, value_set=raw_ids)) if use_raw else as_int
    rows = np.flatnonzero(matched.to_numpy(zero_copy_only=False))
    if len(rows) < table.num_rows:
        log.warning("%s: %d of %d lines name no item of this dataset; they are ignored", path, table.num_rows - len(rows), table.num_rows)
    log.info("%s: item text keyed by %s", path, "the raw ids of the item2index file" if use_raw else "the integer item ids")
    ids = pc.take(ids, pa.array(rows))
    duplicate_ids(ids, path, "id", lambda r: lines(rows[np.asarray(r)]))
    return pa.table({"item_id": ids, "text": pc.take(table.column("text"), pa.array(rows))})


def _unmatched_keys(path: Path, keys: pa.Array, known: pa.Array, item2index: pa.Table | None) -> str:
    if len(keys) == 0:
        return f"{path}: no lines after the header. Add the item text (id \\t text per line) or remove the file."
    found = ", ".join(repr(k) for k in keys.slice(0, 3).to_pylist())
    smallest = pc.take(known, pc.sort_indices(known)).slice(0, 3).to_pylist()
    expected = f"the integer item ids of train/dev/test.csv (e.g. {', '.join(map(str, smallest))})"
    if item2index is not None:
        expected += f" or the raw ids of the item2index file (e.g. {', '.join(repr(r) for r in item2index.column('raw_id').slice(0, 3).to_pylist())})"
        fix = "Use the text file written for this dataset."
    else:
        fix = "If these are raw ids (asins), add the reference's `<DS>.item2index` file (raw id \\t integer id) that maps them."
    return f"{path}: none of its {len(keys)} ids names an item: found {found}; expected {expected}. {fix}"


def _items_table(interaction_items: pa.Array, meta: pa.Table, text: pa.Table | None, item2index: pa.Table | None) -> pa.Table:
    """One row per item id of the interactions or item_meta, ascending."""
    meta_ids = meta.column("item_id").combine_chunks()
    ids = pc.unique(pa.concat_arrays([meta_ids, interaction_items]))
    ids = pc.take(ids, pc.sort_indices(ids))
    pos = pc.index_in(ids, value_set=meta_ids)
    title = pa.nulls(len(ids), pa.string())
    if text is not None:
        found = pc.take(text.column("text"), pc.index_in(ids, value_set=text.column("item_id")))
        title = pc.if_else(pc.equal(pc.utf8_trim_whitespace(found), ""), pa.scalar(None, pa.string()), found)
    raw_id = pc.cast(ids, pa.string())
    if item2index is not None:
        mapped = pc.take(item2index.column("raw_id"), pc.index_in(ids, value_set=item2index.column("item_id")))
        raw_id = pc.coalesce(mapped, raw_id)
    columns = {"item_id": ids, "raw_id": raw_id, "title": title}
    for name in meta.column_names:
        if name != "item_id":
            columns[name] = pc.take(meta.column(name), pos)
    return pa.table(columns)


def _raw_links(links: pa.Table, items: pa.Table) -> pa.Table:
    """Links between integer ids -> between the items' raw ids (what build_relations matches)."""
    raw = lambda ids: pc.take(items.column("raw_id"), pc.index_in(ids, value_set=items.column("item_id")))  # noqa: E731
    return pa.table([raw(links.column("head")), links.column("relation"), raw(links.column("tail"))], schema=LINKS_SCHEMA)
