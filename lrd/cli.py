"""The `lrd` command: tools for looking into what the pipeline produced.

Run from the repository root (it reads params.yaml to find the current dataset and model).
"""

from __future__ import annotations

import json
import sys
import time

import click

from lrd.errors import LRDError


class _Group(click.Group):
    """Turn LRDError into one clean line instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LRDError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)


def params_option(f):
    """--params and --dataset: which params.yaml, and which of its datasets (default: the first)."""
    f = click.option("--dataset", default=None, help="A dataset of params.yaml `datasets` (default: the first one).")(f)
    return click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False),
                        help="params.yaml to read.")(f)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """LRD pipeline tools. The pipeline itself runs with `dvc repro`.

    \b
    Examples:
      lrd neighbors "Toy Story" --k 10
      lrd sql "SELECT kind, count(*) FROM relation_types GROUP BY kind"
      lrd relations show --type latent_5 --limit 20
      lrd relations readout
    """


def _context(params_path: str, dataset: str | None):
    from lrd.config.base import load_params
    from lrd.config.datasets import dataset_config
    from lrd.config.embed import EmbedConfig

    params = load_params(params_path)
    return params, dataset_config(params, dataset), EmbedConfig.from_params(params)


def _store(params_path: str, dataset: str | None):
    from lrd.embed.store import EmbeddingStore, store_dir

    _, dataset, embed = _context(params_path, dataset)
    return EmbeddingStore.open(store_dir(dataset.paths, embed)), dataset


def _titles(dataset) -> dict[int, str]:
    from lrd.io import read_parquet

    items = read_parquet(dataset.paths.table("items"), "ingest", columns=["item", "title", "text"])
    titles = items.column("title").to_pylist()
    texts = items.column("text").to_pylist()
    return {i: (t or x) for i, t, x in zip(items.column("item").to_pylist(), titles, texts)}


def _resolve_item(query: str, titles: dict[int, str]) -> int:
    if query.isascii() and query.isdigit():  # (str.isdigit also holds for "²", which int() refuses)
        item = int(query)
        if item not in titles:
            raise click.BadParameter(f"no item with id {item} (ids run 1..{max(titles)})", param_hint="ITEM")
        return item
    q = query.lower()
    hits = [i for i, t in titles.items() if t and q in t.lower()]
    if not hits:
        raise click.BadParameter(f"no item title contains {query!r}", param_hint="ITEM")
    exact = [i for i in hits if titles[i].lower() == q]
    if len(hits) > 1 and not exact:
        more = ", ".join(f"{i} {titles[i]!r}" for i in hits[:5])
        click.echo(f"{len(hits)} titles match; using the first ({more}{', ...' if len(hits) > 5 else ''})", err=True)
    return (exact or hits)[0]


def _bounded_k(k: int, others: int) -> int:
    """At most the items there are: the search allocates k results per query (--k 3000000000: 11 GiB)."""
    given = click.get_current_context().get_parameter_source("k") != click.core.ParameterSource.DEFAULT
    if k > others and given:  # (the default 10 on a tiny store needs no remark)
        click.echo(f"--k {k} is more than the {others} items there are to show; showing all {others}", err=True)
    return max(min(k, others), 1)


@main.command()
@click.argument("item", required=False)
@click.option("--k", default=10, show_default=True, type=click.IntRange(min=1), help="How many neighbours.")
@click.option("--text", "free_text", help="Search with free text instead of an item (encodes it with the store's model).")
@params_option
def neighbors(item: str | None, k: int, free_text: str | None, params_path: str, dataset: str | None) -> None:
    """Nearest items to ITEM (an item id or a title substring) in the embedding store."""
    from lrd.format import printable

    if item and free_text:
        raise click.UsageError("give an ITEM or --text, not both")
    if not (item or free_text):
        raise click.UsageError("give an ITEM or --text")
    store, dataset = _store(params_path, dataset)
    titles = _titles(dataset)
    k = _bounded_k(k, len(store.ids) - (0 if free_text else 1))
    if free_text:
        from lrd.embed.query import encode_query

        ids, scores = store.search(encode_query(store, free_text), k)
        click.echo(f"nearest to {free_text!r} ({store.manifest['model']}):")
    else:
        query = _resolve_item(item, titles)
        ids, scores = store.neighbors([query], k)
        click.echo(f"nearest to {query} {printable(titles[query])!r} ({store.manifest['model']}):")
    for rank, (i, s) in enumerate(zip(ids[0], scores[0]), start=1):
        if i:
            click.echo(f"{rank:>3}  {i:>7}  {s:6.3f}  {printable(titles.get(int(i), ''))}")


@main.command("embed-info")
@params_option
def embed_info(params_path: str, dataset: str | None) -> None:
    """Print the manifest of the current embedding store."""
    store, _ = _store(params_path, dataset)
    click.echo(json.dumps(store.manifest, indent=2))


# --------------------------------------------------------------------------------------------
# SQL over the pipeline's tables

format_option = click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
    help="Output format: an aligned table, CSV with a header, or a JSON list of objects.",
)
max_width_option = click.option(
    "--max-width", default=40, show_default=True, type=click.IntRange(min=2), help="table format: cut cells longer than this (marked with an ellipsis)."
)


def _connect(params_path: str, dataset: str | None, confined: bool = True):
    from lrd.config.base import load_params
    from lrd.sql import open_views

    return open_views(load_params(params_path), dataset, confined)


def _print_rows(columns, rows, fmt: str, max_width: int, more: bool = False) -> None:
    """Print a result; say on stderr when --limit cut it short (so CSV/JSON stay clean)."""
    from lrd.format import format_rows

    if not columns:
        click.echo("ok (the statement returned no rows)", err=True)
        return
    click.echo(format_rows(columns, rows, fmt, max_width=max_width))
    if fmt == "table":
        click.echo(f"({len(rows)} row{'s' if len(rows) != 1 else ''}{', more not shown' if more else ''})")
    if more:
        sys.stdout.flush()  # the table's last line before the note, in a terminal showing both
        click.echo(f"showing the first {len(rows)} rows; raise --limit (0: all) to see more", err=True)


# --limit beyond this is every row (DuckDB takes row counts below 2**64).
MAX_ROWS = 2**62

# A query may start with "-" (an SQL comment, "-- ..."): it is an argument, not an unknown option.
@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("query", required=False)
@click.option("--tables", "list_tables", is_flag=True, help="List the tables (views) with their row counts and files, instead of running a query.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=0), help="Print at most this many rows (0: all).",
              callback=lambda ctx, param, value: min(value, MAX_ROWS))
@click.option("--unconfined", is_flag=True, help="DuckDB's defaults: queries may also read any file and URL, install and load "
              "extensions and write files (COPY ... TO). Only for queries you trust.")
@format_option
@max_width_option
@params_option
def sql(query: str | None, list_tables: bool, limit: int, unconfined: bool, fmt: str, max_width: int, params_path: str,
        dataset: str | None) -> None:
    """Run a DuckDB SQL QUERY over the current dataset's tables ("-" reads it from stdin).

    \b
    Tables (each where its file exists): items, users, interactions, candidates,
    relations (predefined triples), relation_types, latent, latent_joint, ranks, embeddings.
    \b
    Examples:
      lrd sql --tables
      lrd sql "SELECT kind, count(*) FROM relation_types GROUP BY kind"
      lrd sql "SELECT * FROM latent WHERE probability >= 0.5" --format csv --limit 0 > confident.csv

    Several statements separated by ";" all run; only the last one's result is printed.
    Queries read the tables above and nothing else: no other file, no URL, no DuckDB
    extension installed or loaded, no COPY ... TO (redirect --format csv output instead);
    --unconfined lifts that.
    """
    from lrd.sql import run_query, table_counts

    conn = _connect(params_path, dataset, confined=not unconfined)
    if list_tables:
        if query:
            raise click.UsageError("give a QUERY or --tables, not both")
        columns, rows = table_counts(conn)
        _print_rows(columns, rows, fmt, max_width=max(max_width, 60))
        return
    if query == "-":
        query = _read_stdin()
    if not query or not query.strip():
        raise click.UsageError("give a QUERY (or --tables to see what there is to query)")
    statements = _statement_count(query)
    if statements == 0:
        raise click.UsageError("QUERY holds no SQL statement (only comments or whitespace)")
    if statements > 1:
        click.echo(f"{statements} statements given: all run, only the last one's result is shown", err=True)
    # One row more than asked tells whether the limit cut anything off.
    columns, rows = run_query(conn, query, limit=limit + 1 if limit else None)
    more = bool(limit) and len(rows) > limit
    _print_rows(columns, rows[:limit] if limit else rows, fmt, max_width, more)


def _read_stdin() -> str:
    """The query on stdin as UTF-8 text; other bytes are a usage error naming the line."""
    data = click.get_binary_stream("stdin").read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise click.UsageError(f"the query on stdin is not UTF-8 text (line {line}, byte {exc.start}: {exc.reason}). "
                               "Save it as UTF-8.") from None


def _statement_count(query: str) -> int:
    import duckdb

    try:
        return len(duckdb.extract_statements(query))
    except duckdb.Error:
        return 1  # a syntax error: run_query reports it


@main.group()
def relations() -> None:
    """Look at relation types and the latent relations discover (or joint training) found."""


@relations.command("show")
@click.option("--type", "type_spec", required=True, help="Latent relation type: its name (e.g. latent_7) or id; `lrd relations types` lists them.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many pairs to print.")
@click.option("--min-probability", default=None, type=click.FloatRange(0.0, 1.0),
              help="Leave out pairs below this probability (default: params.yaml discover.min_probability, the confident pairs; 0 shows every pair).")
@click.option("--min-strength", default=None, type=float,
              help="Leave out pairs below this strength (default: lrd.discover.strength.MIN_STRENGTH, the confident pairs; -inf shows every pair).")
@click.option("--joint", is_flag=True, help="Read the relations after joint training (latent_joint.parquet) instead of discover's (latent.parquet).")
@format_option
@max_width_option
@params_option
def relations_show(type_spec: str, limit: int, min_probability: float | None, min_strength: float | None, joint: bool, fmt: str, max_width: int,
                   params_path: str, dataset: str | None) -> None:
    """Pairs of one latent relation type, strongest first (then by ids), with both items' titles
    (the confident ones unless --min-probability / --min-strength say otherwise)."""
    from lrd.discover.strength import MIN_STRENGTH
    from lrd.sql import count_pairs, latent_pairs, resolve_latent_type

    if min_probability is None:
        min_probability = _confident_probability(params_path)
    min_strength = MIN_STRENGTH if min_strength is None else min_strength
    conn = _connect(params_path, dataset)
    rid, name = resolve_latent_type(conn, type_spec)
    total = count_pairs(conn, rid, min_probability, joint, min_strength)
    source = "latent_joint.parquet" if joint else "latent.parquet"
    rule = f"probability >= {min_probability:g} and strength >= {min_strength:g}"
    if total == 0:
        every = count_pairs(conn, rid, 0.0, joint)
        click.echo(f"{name} (id {rid}) has no pairs with {rule} in {source} ({every} in all): "
                   f"`lrd relations types` lists the types that have some; --min-probability 0 --min-strength -inf shows this one's", err=True)
        return
    columns, rows = latent_pairs(conn, rid, limit, min_probability, joint, min_strength)
    if fmt == "table":
        click.echo(f"{name} (id {rid}): {total} pair(s) with {rule} in {source}")
    _print_rows(columns, rows, fmt, max_width, more=total > len(rows))


def _confident_probability(params_path: str) -> float:
    """discover.min_probability of params.yaml: what the readout and the static model call confident."""
    from lrd.config.base import load_params
    from lrd.config.train import DiscoverConfig

    return DiscoverConfig.from_params(load_params(params_path)).min_probability


@relations.command("readout")
@click.option("--joint", is_flag=True, help="Read the relations after joint training (latent_joint.parquet) instead of discover's.")
@click.option("--top", default=5, show_default=True, type=click.IntRange(min=1), help="Top pairs shown per type.")
@params_option
def relations_readout(joint: bool, top: int, params_path: str, dataset: str | None) -> None:
    """Per latent type: its confident pairs, where they come from, how often they share an
    attribute against random and co-occurring pairs (lift, 95% CI), its top titled pairs; the
    recall of known relations (ML-100K film series). As reports/<ds>/relations.md."""
    from lrd.data.tables import DatasetTables
    from lrd.discover.readout import read_latent, readout_for
    from lrd.discover.report import readout_markdown
    from lrd.io import read_parquet

    _, ds, _ = _context(params_path, dataset)
    path = ds.paths.latent_joint if joint else ds.paths.latent
    latent = read_latent(path, "compare" if joint else "discover")
    readout = readout_for(DatasetTables.load(ds.paths), read_parquet(ds.paths.relation_types, "discover"), latent, ds.paths.dataset,
                          _confident_probability(params_path), top)
    click.echo(readout_markdown(readout, f"{ds.paths.dataset}: {path.name}", top))


@relations.command("types")
@click.option("--min-probability", default=0.5, show_default=True, type=click.FloatRange(0.0, 1.0), help="Latent pairs at or above this probability count as confident.")
@click.option("--min-strength", default=None, type=float, help="... and at or above this strength (default: lrd.discover.strength.MIN_STRENGTH).")
@format_option
@max_width_option
@params_option
def relations_types(min_probability: float, min_strength: float | None, fmt: str, max_width: int, params_path: str, dataset: str | None) -> None:
    """Every relation type: predefined ones with their triples, latent ones with their pairs and description."""
    from lrd.discover.strength import MIN_STRENGTH
    from lrd.sql import relation_type_summary

    conn = _connect(params_path, dataset)
    columns, rows = relation_type_summary(conn, min_probability, MIN_STRENGTH if min_strength is None else min_strength)
    _print_rows(columns, rows, fmt, max_width)


# --------------------------------------------------------------------------------------------
# the experiment matrix

def _matrix_options(f):
    f = click.option("--seed", "seeds", multiple=True, type=int, help="Only this seed (repeatable).")(f)
    f = click.option("--model", "models", multiple=True, help="Only this model of params.yaml `models` (repeatable).")(f)
    f = click.option("--dataset", "datasets", multiple=True, help="Only this dataset (repeatable).")(f)
    return click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
                        help="CPU threads per cell (two one-thread cells beat one two-thread cell).")(f)


def _matrix(datasets, models, seeds):
    from pathlib import Path

    from lrd import matrix

    root = Path(".")
    if not (root / "dvc.yaml").exists():
        raise click.UsageError("run `lrd matrix` from the repository root (where dvc.yaml is)")
    params = matrix.load(root)
    return root, matrix.select(matrix.cells(params), datasets, models, seeds), params


@main.group("matrix")
def matrix_group() -> None:
    """The experiment matrix: one training run per (dataset, model, seed).

    \b
    Examples:
      lrd matrix status                          # every cell, its state, and the time left
      lrd matrix run --dataset Office            # run what is pending, cores / threads cells at a time
      lrd matrix run --model kda --model kda_lrd --jobs 2
    """


@matrix_group.command("status")
@click.option("--jobs", default=None, type=click.IntRange(min=1), help="Cells at a time, for the ETA (default: as `run` would).")
@click.option("--epochs", "default_epochs", default=40, show_default=True, type=click.IntRange(min=1),
              help="Epochs assumed for a model with no finished cell yet (marked ~).")
@click.option("--no-dvc", is_flag=True, help="Do not ask `dvc status` whether dvc.lock records the finished cells.")
@_matrix_options
def matrix_status(jobs, default_epochs, no_dvc, threads, datasets, models, seeds) -> None:
    """One line per cell: done / stale / running / started / failed / pending, epochs so far,
    best dev NDCG@5, seconds per epoch (training + dev), and the time left from measured rates.

    \b
    done     results written, and dvc.lock records them (`dvc status` has nothing to do)
    stale    results written, but dvc.lock does not record them or their inputs changed since:
             `lrd matrix commit CELL` when the change leaves results unchanged, else run it again
    running  a runner is training it now;  started: a resume point, nothing running
    failed   its last run failed (the note says how; logs/matrix/<cell>.log has the rest)
    """
    from lrd import matrix

    root, selected, params = _matrix(datasets, models, seeds)
    jobs = jobs or matrix.default_jobs(threads)[0]
    click.echo(matrix.status_table(matrix.states(root, selected, use_dvc=not no_dvc), jobs, default_epochs,
                                   matrix.StopBounds.from_params(params), _rate_pool(root, params, datasets, selected)))


def _rate_pool(root, params, datasets, selected):
    """The states of the cells a --model / --seed filter leaves out: they still tell the rates and
    lengths of their models."""
    from lrd import matrix

    everything = matrix.select(matrix.cells(params), datasets)
    return matrix.states(root, [c for c in everything if c not in selected], use_dvc=False) if len(everything) > len(selected) else []


@matrix_group.command("run")
@click.option("--jobs", default=None, type=click.IntRange(min=1),
              help="Cells at a time (default: CPU cores / --threads; on GPUs, LRD_CELLS_PER_GPU (4) per GPU).")
@click.option("--rerun-stale", is_flag=True, help="Also run cells whose results dvc.lock does not record (see `status`).")
@click.option("--retry-failed/--skip-failed", default=True, show_default=True, help="Run cells whose last run failed again.")
@click.option("--no-record", is_flag=True, help="Do not `dvc commit` finished cells (on a machine without DVC).")
@click.option("--yes", "-y", is_flag=True, help="Start without asking, however long the plan (in a terminal, a plan over "
              "10 CPU-minutes asks first; from a script or pipe it never asks).")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many hours (a session's end): running cells stop at their last finished epoch, and a cell "
              "whose first epoch would not end by then is not started.")
@_matrix_options
def matrix_run(jobs, rerun_stale, retry_failed, no_record, yes, hours, threads, datasets, models, seeds) -> None:
    """Run the pending cells, several at a time, each resumable; record each finished one in
    dvc.lock (`dvc commit`). Ctrl-C stops the running cells at their last finished epoch.

    Prints the plan first: the cells, their CPU-hours and the wall time at --jobs cells at a
    time, from the rates `lrd matrix status` shows. In a terminal, a plan of more than 10
    CPU-minutes (or with cells of no measured rate) asks before starting; --yes skips the
    question. Without a terminal (a script, CI, a pipe) it starts without asking.
    """
    from lrd import matrix

    root, selected, params = _matrix(datasets, models, seeds)
    # one runner per workspace, taken before reading the cells' states: a second runner stops here
    with matrix.runner_lock(matrix.logs_dir(root)):
        deadline = time.time() + hours * 3600 if hours else None
        _run_cells(root, selected, params, jobs, rerun_stale, retry_failed, no_record, threads, yes, datasets, deadline)


# A plan above this much CPU time (or with a cell of unknown cost) asks before it starts, when
# someone at a terminal can answer: a few minutes start at once, an hour never unannounced.
ASK_ABOVE_CPU_SECONDS = 10 * 60


def _run_cells(root, selected, params, jobs, rerun_stale, retry_failed, no_record, threads, yes, datasets, deadline=None) -> None:
    from lrd import matrix

    bounds = matrix.StopBounds.from_params(params)
    default, slots = matrix.default_jobs(threads)
    jobs = jobs or default
    wanted = {"pending", "started"} | ({"stale"} if rerun_stale else set()) | ({"failed"} if retry_failed else set())
    current = matrix.states(root, selected, use_dvc=not no_record)
    todo = matrix.schedule([s.cell for s in current if s.state in wanted], current, bounds=bounds)
    pool = _rate_pool(root, params, datasets, selected)
    click.echo(matrix.status_table(current, jobs, 40, bounds, pool))
    if not rerun_stale:
        _left_alone([s for s in current if s.state == "stale"])
    running = [s.cell for s in current if s.state == "running"]
    if not todo and not running:
        click.echo("\nnothing to run")
        return
    plan = matrix.cost(matrix.plan_estimate(current, todo, 40, bounds, pool), jobs)
    click.echo(_plan_text(todo, running, plan, jobs, upstream=not no_record))
    _confirm(plan, yes)
    click.echo(f"\nrunning {len(todo)} cell(s), {jobs} at a time", err=True)
    echo = lambda line: click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=True)  # noqa: E731
    if not no_record:
        matrix.bring_upstream(root, todo, echo)
    try:
        failed = matrix.run(root, todo, jobs, threads, slots, echo, record=not no_record,
                            adopt=[s.cell for s in current if s.state == "running"], deadline=deadline,
                            epoch_seconds=matrix.epoch_rates(current, pool))
    except KeyboardInterrupt:
        sys.exit(130)
    if failed:
        click.echo(f"{len(failed)} cell(s) failed: {', '.join(c.name for c, _ in failed)} (`lrd matrix status` says why)", err=True)
        sys.exit(1)


def _plan_text(todo, running, plan, jobs: int, upstream: bool) -> str:
    """What `run` is about to do and what it costs."""
    from lrd import matrix

    shown = ", ".join(c.name for c in todo[:6]) + (f" and {len(todo) - 6} more" if len(todo) > 6 else "")
    lines = [f"\nplan: run {len(todo)} cell(s)" + (f" ({shown})" if todo else "") + (f", and wait for {len(running)} already running"
                                                                                    if running else "")]
    if todo:
        lines.append(f"cost: {plan.text(jobs, 40)}")
        if upstream:
            lines.append(f"first: dvc repro {' '.join(matrix.upstream_targets(todo))} (nothing to do when they are up to date)")
    return "\n".join(lines)


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _confirm(plan, yes: bool) -> None:
    """Ask before a long plan when someone at a terminal can answer; scripts and --yes go on."""
    long = plan.unknown > 0 or plan.cpu_seconds > ASK_ABOVE_CPU_SECONDS
    if yes or not long or not _stdin_is_terminal():
        return
    if not click.confirm("start it?", default=False, err=True):
        click.echo("nothing started", err=True)
        sys.exit(1)


def _left_alone(stale) -> None:
    """Say which stale cells this run does not touch, and what to do with each kind."""
    old = [s.cell.name for s in stale if s.params_changed]
    other = [s.cell.name for s in stale if not s.params_changed]
    if other:
        click.echo(f"\nleft alone: {len(other)} stale cell(s) (results not recorded in dvc.lock, or their code or data changed); "
                   "`lrd matrix commit` them when the change leaves results as they were, or pass --rerun-stale", err=True)
    if old:
        click.echo(f"\nleft alone: {len(old)} cell(s) whose results were made with other params than params.yaml's "
                   f"({', '.join(old)}): pass --rerun-stale to run them again (they cannot be committed as they are)", err=True)


@matrix_group.command("commit")
@click.argument("cells", nargs=-1, required=True)
def matrix_commit(cells) -> None:
    """Record finished CELLS (stage names, e.g. train@Office-kda-2019) in dvc.lock as they are.

    For results that a change provably leaves as they were (a tiny run gives identical files
    before and after); otherwise run the cells again."""
    from pathlib import Path

    from lrd import matrix

    root = Path(".")
    known = {c.name: c for c in matrix.cells(matrix.load(root))}
    for name in cells:
        if name not in known:
            raise click.BadParameter(f"{name!r} is not a cell of the matrix (`lrd matrix status` lists them)", param_hint="CELLS")
        cell = known[name]
        if not cell.paths(root).run_metrics(cell.model, cell.seed).exists():
            raise click.UsageError(f"{name} has not finished: no {cell.paths(root).run_metrics(cell.model, cell.seed)}")
        matrix.commit(root, cell)
        click.echo(f"recorded {name} in dvc.lock")


@main.group("params")
def params_group() -> None:
    """params.yaml as a whole."""


@params_group.command("check")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def params_check(params_path: str) -> None:
    """Check every section of params.yaml (what the `params` stage does before every run)."""
    from lrd.config.base import load_params
    from lrd.config.check import check_params

    train = check_params(load_params(params_path))
    click.echo(f"{params_path}: ok ({len(train.all_models) + len(train.ablation_models)} models)")
