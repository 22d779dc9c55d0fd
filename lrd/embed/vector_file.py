"""Precomputed item vectors read from a file (`embed.backend: file`, `embed.path`).

Interface (what lrd.embed.pipeline calls):

    load_vectors(path, items, dim=None, normalize=True, ids="auto", feat_dtype="float64") -> np.ndarray
        float32, one row per row of `items` (columns `item`: int32 ids 1..n, `raw_id`: string),
        in that order; unit length when `normalize`. Raises DataError / ConfigError.
    identity(path, dim=None, normalize=True, ids="auto", feat_dtype="float64") -> dict
        what the vectors depend on, for the store's manifest (see `identity`).

These vectors belong to items, not to texts: they stay out of the text-keyed VectorCache (two
items with the same text may have different vectors here), and reading them is fast anyway.

Formats, told apart by the file name:

    *.parquet, *.pq   columns `id` (string or integer) and `vector` (list or fixed-size list
                      of float16/32/64).
    *.npy             a 2-D float16/32/64 matrix; the row ids sit in a sibling file, the first
                      found of `<stem>.ids.npy` (int or str array), `<stem>.ids.txt` (one id a
                      line) and, for a file named `vectors.npy`, `ids.npy` beside it (so another
                      embedding store's folder works as is).
    *.feat*, *.bin    raw row-major floats with no header, the LRD reference's `<DS>.feat.<name>`:
                      row k holds integer id k+1 (the reference's item2index ids, which a
                      ReChorus folder keeps as `item`). The dimension comes from `dim`; the values are float64
                      (the reference's GPT files) unless `feat_dtype` says float32.

Ids: a file's ids are either the raw item ids (`raw_id`, compared as strings) or the integer
item ids (`item`). `ids="auto"` takes whichever covers more items; when both cover the same
items but pair them with different rows (MovieLens: raw ids are integers too), it refuses and
asks for `ids: raw` or `ids: item`. Ids of items the dataset dropped are ignored.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lrd.errors import ConfigError, DataError
from lrd.io import sha256_file

log = logging.getLogger(__name__)

FLOATS = (np.float16, np.float32, np.float64)
ID_KINDS = ("auto", "raw", "item")


def file_format(path: Path) -> str:
    """parquet, npy or raw, from the name; the file must exist."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        fmt = "parquet"
    elif suffix == ".npy":
        fmt = "npy"
    elif ".feat" in path.name.lower() or suffix == ".bin":
        fmt = "raw"
    else:
        raise ConfigError(
            f"params.yaml: `embed.path` {str(path)!r}: unknown vector file type; use .parquet (id, vector), "
            ".npy (+ <stem>.ids.npy or <stem>.ids.txt) or the reference's raw <DS>.feat.<name>"
        )
    if not path.is_file():
        raise DataError(f"{path}: vector file not found; set `embed.path` to the file holding the item vectors")
    return fmt


def ids_file(path: Path) -> Path | None:
    """The sibling file holding a .npy matrix's row ids (see the module docstring)."""
    stem = path.with_suffix("")
    candidates = [stem.with_name(stem.name + ".ids.npy"), stem.with_name(stem.name + ".ids.txt")]
    if path.name == "vectors.npy":
        candidates.append(path.with_name("ids.npy"))
    return next((c for c in candidates if c.exists()), None)


def identity(path: str | Path, dim: int | None = None, normalize: bool = True, ids: str = "auto", feat_dtype: str = "float64") -> dict:
    """What the vectors depend on: the files' contents and the reading settings.

    A content hash rather than path + size + mtime: copying or moving the file (a fresh clone,
    `dvc pull`) keeps it, and an edit that keeps size and mtime still changes it. Hashing reads
    the file once more (about 1 GB/s); the path is left out on purpose and belongs in the
    manifest only.
    """
    path = Path(path)
    fmt = file_format(path)
    out = {"backend": "file", "format": fmt, "sha256": sha256_file(path), "dim": dim, "normalize": normalize, "ids": ids}
    if fmt == "npy":
        sibling = ids_file(path)
        out["ids_sha256"] = sha256_file(sibling) if sibling else None
    if fmt == "raw":
        out["feat_dtype"] = feat_dtype
    return out


def load_vectors(
    path: str | Path, items: pa.Table, dim: int | None = None, normalize: bool = True, ids: str = "auto", feat_dtype: str = "float64"
) -> np.ndarray:
    """The vectors of `items`, row for row, as float32 (see the module docstring)."""
    path = Path(path)
    if ids not in ID_KINDS:
        raise ConfigError(f"params.yaml: `embed.ids` is {ids!r}; choose one of {', '.join(ID_KINDS)}")
    fmt = file_format(path)
    if fmt == "parquet":
        file_ids, take = _read_parquet(path, dim)
    elif fmt == "npy":
        file_ids, take = _read_npy(path, dim)
    else:
        file_ids, take = _read_raw(path, dim, feat_dtype, len(items))
    rows, kind = _match(path, file_ids, items, ids)
    _check_missing(path, rows, items, kind)
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, reported just below
        vectors = take(rows)
    _check_values(path, vectors, rows, file_ids, normalize)
    if normalize:
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    log.info("read %d x %d item vectors from %s (ids: %s)", *vectors.shape, path, kind)
    return vectors


# --------------------------------------------------------------------------------------------
# readers: each returns the file's ids (a pyarrow array) and `take(rows) -> float32 matrix`,
# so only the rows of the dataset's items are ever converted.


def _read_parquet(path: Path, dim: int | None):
    try:
        names = pq.read_schema(path).names
        if "id" not in names or "vector" not in names:
            raise DataError(f"{path}: needs columns `id` and `vector`, found {', '.join(names)}; rename the columns")
        table = pq.read_table(path, columns=["id", "vector"])
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    col = table.column("vector")
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)) or not pa.types.is_floating(col.type.value_type):
        raise DataError(f"{path}: column `vector` must be a list of float16/32/64, found {col.type}; write the vectors as float lists")
    null = pc.is_null(col).to_numpy(zero_copy_only=False)
    if null.any():
        bad = np.flatnonzero(null)
        raise DataError(f"{path}: {len(bad)} row(s) have a null vector, ids {_examples(table.column('id'), bad)}; write a vector for each id")
    sizes = np.unique(pc.list_value_length(col).to_numpy(zero_copy_only=False))
    if len(sizes) > 1:
        raise DataError(f"{path}: vectors have different lengths ({', '.join(map(str, sizes[:5]))}); every vector needs the same dimension")
    _check_dim(path, int(sizes[0]) if len(sizes) else 0, dim)

    def take(rows: np.ndarray) -> np.ndarray:
        picked = pc.take(col, pa.array(rows)).combine_chunks()
        values = picked.flatten().to_numpy(zero_copy_only=False)  # null values become NaN, caught later
        return values.astype(np.float32).reshape(len(rows), -1)

    return table.column("id"), take


def _read_npy(path: Path, dim: int | None):
    sibling = ids_file(path)
    if sibling is None:
        stem = path.with_suffix("").name
        raise DataError(f"{path}: no id list beside it; write the row ids to {stem}.ids.npy or {stem}.ids.txt (one id a line)")
    try:
        matrix = np.load(path, mmap_mode="r")  # memory-mapped: only the items' rows are read
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy matrix ({exc})") from None
    if matrix.ndim != 2 or matrix.dtype.type not in FLOATS:
        raise DataError(f"{path}: needs a 2-D float16/32/64 matrix, found shape {matrix.shape} of {matrix.dtype}; save it as float32")
    _check_dim(path, matrix.shape[1], dim)
    file_ids = _read_ids(sibling)
    if len(file_ids) != matrix.shape[0]:
        raise DataError(f"{sibling}: {len(file_ids)} ids for the {matrix.shape[0]} rows of {path.name}; write one id per row")
    log.info("row ids of %s read from %s", path.name, sibling)
    return file_ids, lambda rows: np.asarray(matrix[rows], dtype=np.float32)


def _read_ids(path: Path) -> pa.Array:
    if path.suffix == ".txt":
        return pa.array(path.read_text(encoding="utf-8").splitlines(), pa.string())
    try:
        ids = np.load(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable id array ({exc}); save the ids as an int or str numpy array") from None
    if ids.ndim != 1 or ids.dtype.kind not in "iuU":
        raise DataError(f"{path}: ids must be a 1-D int or str array, found shape {ids.shape} of {ids.dtype}")
    return pa.array(ids)


def _read_raw(path: Path, dim: int | None, dtype: str, n_items: int):
    if dim is None:
        raise ConfigError(f"params.yaml: `embed.vector_dim` is required for the raw vector file {path} (it has no header)")
    if dtype not in ("float64", "float32"):
        raise ConfigError(f"params.yaml: `embed.feat_dtype` is {dtype!r}; choose float64 or float32")
    width = np.dtype(dtype).itemsize
    size = path.stat().st_size
    if size == 0 or size % (dim * width):
        hint = ""
        values = size // width
        if size % width == 0 and values % n_items == 0:
            hint = f" (one row per item of this dataset would make it {values // n_items})"
        raise DataError(
            f"{path}: {size} bytes is not a whole number of {dim}-d {dtype} rows ({dim} x {width} bytes); "
            f"set `embed.vector_dim` to the vectors' dimension{hint} or check `embed.feat_dtype`"
        )
    matrix = np.memmap(path, dtype=dtype, mode="r").reshape(-1, dim)
    _check_raw_rows(path, matrix, dim, dtype)
    return pa.array(np.arange(1, len(matrix) + 1, dtype=np.int64)), lambda rows: np.asarray(matrix[rows], dtype=np.float32)


def _check_raw_rows(path: Path, matrix: np.ndarray, dim: int, dtype: str) -> None:
    """A raw file read with the wrong dimension or number type still splits into rows, of
    garbage: zero rows, NaN, or huge values. A sample of rows must look like vectors."""
    rows = np.linspace(0, len(matrix) - 1, num=min(len(matrix), 10_000)).astype(np.int64)
    with np.errstate(all="ignore"):
        sample = np.asarray(matrix[rows], dtype=np.float64)
        peak = np.abs(sample).max(axis=1)
    bad = ~np.isfinite(sample).all(axis=1) | (peak > 1e6) | (peak == 0)
    if bad.mean() > 0.01:
        raise DataError(
            f"{path}: read as {dim}-d {dtype} rows, {bad.mean():.0%} of the rows sampled are all zeros, NaN or beyond 1e6: "
            "the file holds other numbers than that; check `embed.vector_dim` and `embed.feat_dtype`"
        )


def _check_dim(path: Path, found: int, dim: int | None) -> None:
    if dim is not None and found != dim:
        raise DataError(f"{path}: vectors have dimension {found}, but `embed.vector_dim` is {dim}; set `embed.vector_dim: {found}` (or null)")


# --------------------------------------------------------------------------------------------
# ids


def _match(path: Path, file_ids: pa.Array, items: pa.Table, kind: str) -> tuple[np.ndarray, str]:
    """File row of each item (-1: none) and which ids matched (raw or item)."""
    file_ids = file_ids.combine_chunks() if isinstance(file_ids, pa.ChunkedArray) else file_ids
    _check_unique(path, file_ids)
    as_raw = pc.cast(file_ids, pa.string())
    as_int = _integers(file_ids)
    raw = _rows(pc.index_in(items.column("raw_id"), value_set=as_raw))
    item = _rows(pc.index_in(pc.cast(items.column("item"), pa.int64()), value_set=as_int)) if as_int is not None else np.full(len(items), -1)
    if kind != "auto":
        return (raw, "raw") if kind == "raw" else (item, "item")
    n_raw, n_item = int((raw >= 0).sum()), int((item >= 0).sum())
    if n_raw == n_item == 0:
        raise DataError(
            f"{path}: none of its ids match this dataset's items: found ids like {file_ids[:3].to_pylist()}, "
            f"expected raw item ids like {items.column('raw_id')[:3].to_pylist()} or integer item ids "
            f"{_int_range(items)}; write the vectors under one of those"
        )
    if n_raw == n_item and not np.array_equal(raw, item):
        raise ConfigError(
            f"{path}: its ids match the raw item ids and the integer item ids equally well ({n_raw} items), "
            "with different rows; say which they are: `embed.ids: raw` or `embed.ids: item`"
        )
    return (raw, "raw") if n_raw >= n_item else (item, "item")


def _integers(ids: pa.Array) -> pa.Array | None:
    """The ids as int64, or None when they are not all integers."""
    try:
        return pc.cast(ids, pa.int64())  # strings of digits, or integral floats
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _rows(found: pa.Array) -> np.ndarray:
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _check_unique(path: Path, ids: pa.Array) -> None:
    if pc.count_distinct(ids).as_py() != len(ids):
        counts = pc.value_counts(ids)
        repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
        raise DataError(f"{path}: {len(repeated)} id(s) appear more than once, e.g. {repeated[:3].to_pylist()}; keep one vector per id")


def _check_missing(path: Path, rows: np.ndarray, items: pa.Table, kind: str) -> None:
    missing = np.flatnonzero(rows < 0)
    if len(missing):
        column = "raw_id" if kind == "raw" else "item"
        raise DataError(
            f"{path}: no vector for {len(missing)} of {len(items)} items (matched by {'raw' if kind == 'raw' else 'integer'} id), "
            f"e.g. {_examples(items.column(column), missing)}; add their vectors to the file"
        )


def _check_values(path: Path, vectors: np.ndarray, rows: np.ndarray, file_ids: pa.Array, normalize: bool) -> None:
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        raise DataError(f"{path}: {len(bad)} vector(s) hold NaN or inf (or overflow float32), ids {_examples(file_ids, rows[bad], 5)}; recompute them")
    if normalize:
        zero = np.flatnonzero(~np.any(vectors, axis=1))
        if len(zero):
            raise DataError(f"{path}: {len(zero)} vector(s) are all zeros and cannot be normalised, ids {_examples(file_ids, rows[zero], 5)}; recompute them or set `embed.normalize: false`")


def _examples(column, positions, k: int = 3) -> list:
    positions = list(positions)[:k]
    return pc.take(column, pa.array(positions, pa.int64())).to_pylist() if positions else []


def _int_range(items: pa.Table) -> str:
    ids = items.column("item")
    return f"{pc.min(ids).as_py()}..{pc.max(ids).as_py()}"
