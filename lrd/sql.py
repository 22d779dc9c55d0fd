"""SQL over what the pipeline wrote: one DuckDB view per table of the current dataset.

    conn = open_views(load_params())
    columns, rows = run_query(conn, "SELECT kind, count(*) FROM relation_types GROUP BY kind")
    print(format_table(columns, rows))

The views read the files in place when a query runs (nothing is loaded up front), so a fresh
connection always sees the latest outputs. Only tables that exist on disk get a view; `tables`
says which ones did.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import math
import re
import uuid
from pathlib import Path
from typing import Any, Sequence

import duckdb

from lrd.config import EmbedConfig, dataset_config
from lrd.errors import ConfigError, DataError, MissingUpstreamError, QueryError

# Processed tables that map one-to-one onto a view of the same name (relations.parquet is
# the predefined relations; discovered ones are `latent`).
_PROCESSED = ("items", "users", "interactions", "candidates", "relations")

# --------------------------------------------------------------------------------------------
# views


def open_views(params: dict) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per table of params' dataset found on disk.

    Each view's comment (duckdb_views().comment) is the file or pattern it reads.
    """
    conn = duckdb.connect(":memory:")
    for name, select, source in _view_sources(params):
        try:
            conn.execute(f"CREATE VIEW {name} AS {select}")
        except duckdb.Error as exc:
            # Creating a view reads the file's schema, so a corrupt file shows up here.
            raise DataError(f"{source}: DuckDB cannot read it ({_one_line(str(exc))}); re-run the stage that writes it") from None
        conn.execute(f"COMMENT ON VIEW {name} IS {_literal(source)}")
    return conn


def _view_sources(params: dict) -> list[tuple[str, str, str]]:
    """(view name, SELECT statement, source path) for every table that exists right now."""
    dataset = dataset_config(params)
    processed = dataset.processed_dir.resolve()
    discovered = (Path("data/relations") / dataset.name).resolve()
    out = []
    for name in _PROCESSED:
        _add_parquet(out, name, processed / f"{name}.parquet")
    # discover's copy adds the latent types to the predefined ones; ingest's is the fallback.
    types = discovered / "relation_types.parquet"
    _add_parquet(out, "relation_types", types if types.exists() else processed / "relation_types.parquet")
    _add_parquet(out, "latent", discovered / "latent.parquet")
    _add_parquet(out, "latent_joint", discovered / "latent_joint.parquet")
    ranks = _ranks_view(Path("models").resolve())
    if ranks:
        out.append(ranks)
    manifest = _manifest_path(params, dataset.name)
    if manifest.exists():
        out.append(("embeddings", f"SELECT * FROM read_json_auto({_literal(str(manifest))})", str(manifest)))
    return out


def _add_parquet(out: list, name: str, path: Path) -> None:
    if path.exists():
        # A list of one path is never read as a glob, whatever characters the path holds.
        out.append((name, f"SELECT * FROM read_parquet([{_literal(str(path))}])", str(path)))


def _ranks_view(models: Path) -> tuple[str, str, str] | None:
    """The union of models/*/ranks.parquet, or None when no model has been trained yet.

    The files are listed rather than globbed: a glob would also match the hidden folder of a
    model being trained right now (models/.<name>.tmp-xxxx/), and read odd folder names as
    patterns.
    """
    files = _visible_ranks(models)
    if not files:
        return None
    listed = ", ".join(_literal(str(p)) for p in files)
    return "ranks", f"SELECT * FROM read_parquet([{listed}], union_by_name = true)", str(models / "*" / "ranks.parquet")


def _visible_ranks(models: Path) -> list[Path]:
    if not models.is_dir():
        return []
    return sorted(p for p in models.glob("*/ranks.parquet") if not p.parent.name.startswith("."))


def _manifest_path(params: dict, dataset: str) -> Path:
    from lrd.embed.store import store_dir  # imports FAISS: only when a view is being built

    return (store_dir(dataset, EmbedConfig.from_params(params)) / "manifest.json").resolve()


def _relative(path: str | None) -> str | None:
    """`path` relative to the working directory when it lies below it (shorter to read)."""
    if not path:
        return path
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _literal(text: str) -> str:
    """`text` as a SQL string literal (single quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def tables(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Names of the views open_views created (and any the session added), sorted."""
    rows = conn.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY view_name").fetchall()
    return [r[0] for r in rows]


def table_counts(conn: duckdb.DuckDBPyConnection) -> tuple[list[str], list[tuple]]:
    """(columns, rows): each view with its row count and the file it reads."""
    views = conn.execute("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal ORDER BY view_name").fetchall()
    rows = []
    for name, source in views:
        count = run_query(conn, f'SELECT count(*) FROM "{name}"')[1][0][0]
        rows.append((name, count, _relative(source)))
    return ["table", "rows", "source"], rows


# --------------------------------------------------------------------------------------------
# queries


def run_query(conn: duckdb.DuckDBPyConnection, sql: str, limit: int | None = None, parameters: Sequence | None = None) -> tuple[list[str], list[tuple]]:
    """Run `sql`; return (column names, rows), at most `limit` rows when given.

    Any DuckDB error becomes a QueryError with DuckDB's message on one line.
    """
    try:
        conn.execute(sql, parameters) if parameters else conn.execute(sql)
        if conn.description is None:  # a statement without a result (CREATE, SET, ...)
            return [], []
        columns = [d[0] for d in conn.description]
        # Errors can also surface while rows are produced (casts, files), so fetch inside the try.
        rows = conn.fetchall() if limit is None else conn.fetchmany(limit)
    except duckdb.Error as exc:
        raise QueryError(_error_message(exc, conn)) from None
    return columns, rows


def _error_message(exc: duckdb.Error, conn: duckdb.DuckDBPyConnection) -> str:
    message = _one_line(str(exc))
    if isinstance(exc, duckdb.CatalogException) and re.search(r"Table with name \S+ does not exist", message):
        names = tables(conn)
        message += f" -- tables here: {', '.join(names)}" if names else " -- no tables here: run `dvc repro ingest` first (or check --params)"
    return message


def _one_line(text: str) -> str:
    """DuckDB's multi-line message on one line; the ^^^ marker line means nothing once joined."""
    lines = [line.strip() for line in text.splitlines()]
    return " ".join(line for line in lines if line and set(line) != {"^"})


# --------------------------------------------------------------------------------------------
# relations


def latent_types(conn: duckdb.DuckDBPyConnection) -> list[tuple[int, str]]:
    """(id, name) of every latent relation type, in id order (empty before discover has run)."""
    _require(conn, "relation_types", "ingest")
    return run_query(conn, "SELECT id, name FROM relation_types WHERE kind = 'latent' ORDER BY id")[1]


def resolve_latent_type(conn: duckdb.DuckDBPyConnection, spec: str) -> tuple[int, str]:
    """(id, name) of the latent type given by id ("28") or name ("latent_2")."""
    latent = latent_types(conn)
    if not latent:
        raise MissingUpstreamError("relation_types has no latent types yet: run `dvc repro discover` first")
    spec = spec.strip()
    for rid, name in latent:
        if spec == str(rid) or spec.lower() == name.lower():
            return rid, name
    valid = ", ".join(f"{rid} {name}" for rid, name in latent)
    other = run_query(conn, "SELECT id, name, kind FROM relation_types WHERE CAST(id AS VARCHAR) = ? OR lower(name) = lower(?)", parameters=[spec, spec])[1]
    what = f"{other[0][0]} ({other[0][1]}) is a predefined {other[0][2]} type, not a latent one" if other else f"no latent type {spec!r}"
    raise ConfigError(f"--type: {what}; latent types: {valid}")


def latent_pairs(conn: duckdb.DuckDBPyConnection, relation: int, limit: int = 20, min_probability: float = 0.0, joint: bool = False) -> tuple[list[str], list[tuple]]:
    """Pairs of one latent type, most probable first, with both items' titles."""
    view = _latent_view(conn, joint)
    title = "coalesce(nullif({0}.title, ''), {0}.text)"  # as the CLI's other commands: text when no title
    sql = f"""
        SELECT l.head, {title.format('h')} AS head_title, l.tail, {title.format('t')} AS tail_title,
               l.probability, l.source
        FROM {view} l
        LEFT JOIN items h ON h.item = l.head
        LEFT JOIN items t ON t.item = l.tail
        WHERE l.relation = ? AND l.probability >= ?
        ORDER BY l.probability DESC, l.head, l.tail
        LIMIT ?"""
    return run_query(conn, sql, parameters=[relation, min_probability, limit])


def count_pairs(conn: duckdb.DuckDBPyConnection, relation: int, min_probability: float = 0.0, joint: bool = False) -> int:
    """How many pairs of one latent type reach `min_probability`."""
    view = _latent_view(conn, joint)
    return run_query(conn, f"SELECT count(*) FROM {view} WHERE relation = ? AND probability >= ?", parameters=[relation, min_probability])[1][0][0]


def relation_type_summary(conn: duckdb.DuckDBPyConnection, min_probability: float = 0.5) -> tuple[list[str], list[tuple]]:
    """Every relation type with its predefined triples, or for latent ones its pairs and confident pairs."""
    _require(conn, "relation_types", "ingest")
    names = set(tables(conn))
    columns = ["rt.id", "rt.name", "rt.kind"]
    joins, params = [], []
    if "relations" in names:
        columns.append("p.triples")
        joins.append("LEFT JOIN (SELECT relation, count(*) AS triples FROM relations GROUP BY relation) p ON p.relation = rt.id")
    for view, label in (("latent", ""), ("latent_joint", "joint_")):
        if view in names:
            alias = label + "l"
            # A latent type that got no pairs shows 0, not NULL; other kinds stay NULL.
            columns += [
                f"CASE WHEN rt.kind = 'latent' THEN coalesce({alias}.pairs, 0) END AS {label}pairs",
                f"CASE WHEN rt.kind = 'latent' THEN coalesce({alias}.confident, 0) END AS {label}confident",
            ]
            joins.append(
                f"LEFT JOIN (SELECT relation, count(*) AS pairs, count(*) FILTER (WHERE probability >= ?) AS confident "
                f"FROM {view} GROUP BY relation) {alias} ON {alias}.relation = rt.id"
            )
            params.append(min_probability)
    sql = f"SELECT {', '.join(columns)} FROM relation_types rt {' '.join(joins)} ORDER BY rt.id"
    return run_query(conn, sql, parameters=params)


def _latent_view(conn: duckdb.DuckDBPyConnection, joint: bool) -> str:
    if joint:
        _require(conn, "latent_joint", "compare", "(it appears after training a +LRD model)")
        return "latent_joint"
    _require(conn, "latent", "discover")
    return "latent"


def _require(conn: duckdb.DuckDBPyConnection, view: str, stage: str, why: str = "") -> None:
    if view not in tables(conn):
        raise MissingUpstreamError(f"no `{view}` table for this dataset: run `dvc repro {stage}` first {why}".rstrip())


# --------------------------------------------------------------------------------------------
# output formats


def format_table(columns: Sequence[str], rows: Sequence[Sequence], max_width: int = 40) -> str:
    """An aligned plain-text table: numbers right-aligned, text longer than max_width cut with …."""
    max_width = max(max_width, 2)
    # Numbers are never cut: a clipped number would read as a different number.
    cells = [[_cell_text(v) if _is_number(v) else _clip(_cell_text(v), max_width) for v in row] for row in rows]
    header = [_clip(str(c), max_width) for c in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    numeric = [_is_numeric_column([row[i] for row in rows]) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def format_csv(columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    """CSV with a header row; NULL is an empty field, lists and structs are JSON."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_value(v) for v in row])
    return buf.getvalue().rstrip("\n")


def format_json(columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A JSON list of objects, one per row (one line each); NaN and infinities become null."""
    keys = _unique(columns)
    objects = [json.dumps({k: _json_value(v) for k, v in zip(keys, row)}, default=_json_default, ensure_ascii=False) for row in rows]
    if not objects:
        return "[]"
    return "[\n" + ",\n".join(objects) + "\n]"


FORMATS = {"table": format_table, "csv": format_csv, "json": format_json}


def format_rows(columns: Sequence[str], rows: Sequence[Sequence], fmt: str = "table", max_width: int = 40) -> str:
    """The result in one of FORMATS."""
    if fmt == "table":
        return format_table(columns, rows, max_width=max_width)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[fmt](columns, rows)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool)


def _is_numeric_column(values: Sequence) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(_is_number(v) for v in present)


def _format_float(x: float) -> str:
    """4 decimals; 4 significant digits in scientific notation where that would hide the value."""
    if not math.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e9):
        return f"{x:.3e}"
    return f"{x:.4f}"


def _cell_text(v: Any) -> str:
    """How one value reads in the table: on one line, NULL spelled out."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _format_float(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_cell_text(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_cell_text(x)}" for k, x in v.items()) + "}"
    # Newlines and tabs would break the row apart.
    return re.sub(r"[\r\n\t]+", " ", str(v))


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(_json_value(v), default=_json_default, ensure_ascii=False)
    return v


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN or Infinity
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    return v


def _json_default(o: Any) -> Any:
    if isinstance(o, decimal.Decimal):
        return float(o)
    if isinstance(o, (datetime.date, datetime.time)):
        return o.isoformat()
    if isinstance(o, datetime.timedelta):
        return o.total_seconds()
    if isinstance(o, (bytes, bytearray)):
        return o.hex()
    if isinstance(o, uuid.UUID):
        return str(o)
    return str(o)


def _unique(columns: Sequence[str]) -> list[str]:
    """Column names made unique (`SELECT a.x, b.x` has two "x"), so no JSON key is lost."""
    seen: dict[str, int] = {}
    out = []
    for c in columns:
        name = c
        while name in seen:
            seen[c] += 1
            name = f"{c}_{seen[c]}"
        seen.setdefault(name, 0)
        out.append(name)
    return out
