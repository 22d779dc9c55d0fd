"""SQL over what the pipeline wrote: one DuckDB view per table of the current dataset.

    conn = open_views(load_params())
    columns, rows = run_query(conn, "SELECT kind, count(*) FROM relation_types GROUP BY kind")
    print(format_table(columns, rows))

The views read the files in place when a query runs (nothing is loaded up front), so a fresh
connection always sees the latest outputs. Only tables that exist on disk get a view; `tables`
says which ones did.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import duckdb

from lrd.config.datasets import dataset_config

from lrd.config.embed import EmbedConfig
from lrd.errors import ConfigError, DataError, MissingUpstreamError, QueryError
from lrd.paths import Paths

# Processed tables that map one-to-one onto a view of the same name (relations.parquet is
# the predefined relations; discovered ones are `latent`).
_PROCESSED = ("items", "users", "interactions", "candidates", "relations")

# --------------------------------------------------------------------------------------------
# views


def open_views(params: dict, dataset: str | None = None, confined: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per table of params' dataset found on disk.

    Each view's comment (duckdb_views().comment) is the file or pattern it reads. `confined`:
    queries reach these tables only (False: DuckDB's defaults, `lrd sql --unconfined`).
    """
    conn = duckdb.connect(":memory:")
    folders: set[str] = set()
    for name, select, source in _view_sources(params, dataset):
        try:
            conn.execute(f"CREATE VIEW {name} AS {select}")
        except duckdb.Error as exc:
            # Creating a view reads the file's schema, so a corrupt file shows up here.
            raise DataError(f"{source}: DuckDB cannot read it ({_one_line(str(exc))}); re-run the stage that writes it") from None
        conn.execute(f"COMMENT ON VIEW {name} IS {_literal(source)}")
        folders.add(source.split("*")[0] if "*" in source else str(Path(source).parent) + "/")
    # Queries read these tables and nothing else: no other file (secrets in /proc or ~ included),
    # no URL, no extension installed or loaded on demand (DuckDB would fetch and run code).
    # DuckDB refuses to turn external access back on while the database runs.
    if not confined:
        return conn
    listed = ", ".join(_literal(f) for f in sorted(folders))
    conn.execute(f"SET allowed_directories = [{listed}]")
    for setting in ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions"):
        conn.execute(f"SET {setting} = false")
    return conn


def _view_sources(params: dict, dataset: str | None) -> list[tuple[str, str, str]]:
    """(view name, SELECT statement, source path) for every table that exists right now."""
    paths = dataset_config(params, dataset).paths
    out = []
    for name in _PROCESSED:
        _add_parquet(out, name, paths.table(name).resolve())
    # discover's copy adds the latent types to the predefined ones; ingest's is the fallback.
    types = paths.relation_types if paths.relation_types.exists() else paths.table("relation_types")
    _add_parquet(out, "relation_types", types.resolve())
    _add_parquet(out, "latent", paths.latent.resolve())
    _add_parquet(out, "latent_joint", paths.latent_joint.resolve())
    ranks = _ranks_view(paths.results.resolve(), _declared_runs(params, paths.dataset))
    if ranks:
        out.append(ranks)
    manifest = _manifest_path(params, paths)
    if manifest.exists():
        out.append(("embeddings", f"SELECT * FROM read_json_auto({_literal(str(manifest))})", str(manifest)))
    return out


def _add_parquet(out: list, name: str, path: Path) -> None:
    if path.exists():
        # A list of one path is never read as a glob, whatever characters the path holds.
        out.append((name, f"SELECT * FROM read_parquet([{_literal(str(path))}])", str(path)))


def _declared_runs(params: dict, dataset: str) -> list[tuple[str, int]]:
    """The (model, seed) runs params.yaml declares for `dataset`: the cells of the matrix."""
    from lrd.matrix import cells

    return [(c.model, c.seed) for c in cells(params) if c.dataset == dataset]


def _ranks_view(results: Path, runs: list[tuple[str, int]]) -> tuple[str, str, str] | None:
    """The union of results/<ds>/<model>/<seed>/ranks.parquet of the declared `runs` that have
    finished, or None when none has. A seed or model dropped from params.yaml leaves its folder
    behind; like compare, the view leaves it out.

    The files are listed rather than globbed: a glob would also match the hidden temporary
    file of a run being written right now, and read odd folder names as patterns.
    """
    files = [results / model / str(seed) / "ranks.parquet" for model, seed in sorted(runs)]
    files = [p for p in files if p.exists()]
    if not files:
        return None
    listed = ", ".join(_literal(str(p)) for p in files)
    return "ranks", f"SELECT * FROM read_parquet([{listed}], union_by_name = true)", str(results / "*" / "*" / "ranks.parquet")


def _manifest_path(params: dict, paths: Paths) -> Path:
    from lrd.embed.store import store_dir  # imports FAISS: only when a view is being built

    return (store_dir(paths, EmbedConfig.from_params(params)) / "manifest.json").resolve()


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


def latent_pairs(conn: duckdb.DuckDBPyConnection, relation: int, limit: int = 20, min_probability: float = 0.0, joint: bool = False,
                 min_strength: float | None = None) -> tuple[list[str], list[tuple]]:
    """Pairs of one latent type, strongest first (most probable where the table has no strength),
    then by ids, with both items' titles."""
    view = _latent_view(conn, joint)
    title = "coalesce(nullif({0}.title, ''), {0}.text)"  # as the CLI's other commands: text when no title
    where, params = _pair_filter(conn, view, "l.", min_probability, min_strength)
    strong = _has_column(conn, view, "strength")
    sql = f"""
        SELECT l.head, {title.format('h')} AS head_title, l.tail, {title.format('t')} AS tail_title,
               l.probability, {"round(CAST(l.strength AS DOUBLE), 3) AS strength, " if strong else ""}l.source
        FROM {view} l
        LEFT JOIN items h ON h.item = l.head
        LEFT JOIN items t ON t.item = l.tail
        WHERE l.relation = ? AND {where}
        ORDER BY {"l.strength" if strong else "l.probability"} DESC, l.head, l.tail
        LIMIT ?"""
    return run_query(conn, sql, parameters=[relation, *params, limit])


def count_pairs(conn: duckdb.DuckDBPyConnection, relation: int, min_probability: float = 0.0, joint: bool = False,
                min_strength: float | None = None) -> int:
    """How many pairs of one latent type reach `min_probability` (and `min_strength`, where the table has strengths)."""
    view = _latent_view(conn, joint)
    where, params = _pair_filter(conn, view, "", min_probability, min_strength)
    return run_query(conn, f"SELECT count(*) FROM {view} WHERE relation = ? AND {where}", parameters=[relation, *params])[1][0][0]


def _has_column(conn: duckdb.DuckDBPyConnection, view: str, column: str) -> bool:
    """Whether a view has a column (a triplet table written before the strength existed has none)."""
    return column in [d[0] for d in conn.execute(f"SELECT * FROM {view} LIMIT 0").description]


def _pair_filter(conn: duckdb.DuckDBPyConnection, view: str, prefix: str, min_probability: float, min_strength: float | None) -> tuple[str, list]:
    """The confident-pair condition: probability, and strength where asked and the table has it."""
    if min_strength is None or not _has_column(conn, view, "strength"):
        return f"{prefix}probability >= ?", [min_probability]
    return f"{prefix}probability >= ? AND {prefix}strength >= ?", [min_probability, min_strength]


def relation_type_summary(conn: duckdb.DuckDBPyConnection, min_probability: float = 0.5, min_strength: float | None = None) -> tuple[list[str], list[tuple]]:
    """Every relation type with its predefined triples, or for latent ones its pairs, confident
    pairs (probability, and strength where asked) and description."""
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
            where, more = _pair_filter(conn, view, "", min_probability, min_strength)
            joins.append(
                f"LEFT JOIN (SELECT relation, count(*) AS pairs, count(*) FILTER (WHERE {where}) AS confident "
                f"FROM {view} GROUP BY relation) {alias} ON {alias}.relation = rt.id"
            )
            params += more
    if _has_column(conn, "relation_types", "description"):  # written by discover for its latent types
        columns.append("rt.description")
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
