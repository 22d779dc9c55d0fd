"""`lrd.sql` and the `lrd sql` / `lrd relations` commands, on tiny tables written here."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from lrd import schemas
from lrd.cli import main
from lrd.errors import MissingUpstreamError, QueryError
from lrd.format import format_csv, format_json, format_table
from lrd.sql import open_views, run_query, table_counts, tables

PARAMS = {
    "datasets": {"tiny": {"format": "recbole", "source": {"kind": "path", "path": "x"}}},
    "embed": {},
    # the runs the ranks view reads: the matrix's cells (m1 and m2, seed 1)
    "models": {"m1": {"arch": "kda", "lr": 1.0e-3}, "m2": {"arch": "kda", "lr": 1.0e-3}},
    "train": {"models": ["m1", "m2"], "lrd_models": [], "seeds": [1]},
}
TITLES = {1: "Alien", 2: "Aliens", 3: "Heat", 4: "Toy Story"}
# Predefined types 0..3, latent types 4..5 (discover's relation_types.parquet).
PREDEFINED = [(0, "any", "virtual"), (1, "sequel", "item-item"), (2, "genres=Action", "attribute"), (3, "year", "attribute")]
LATENT = [(4, "latent_1", "latent"), (5, "latent_2", "latent")]


def _write(rows: dict, schema: pa.Schema, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows, schema=schema), path)


def _types(rows: list[tuple]) -> dict:
    return {"id": [r[0] for r in rows], "name": [r[1] for r in rows], "kind": [r[2] for r in rows]}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch) -> Path:
    """A working tree with every table the views read, for dataset `tiny`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    processed, discovered = Path("data/processed/tiny"), Path("data/relations/tiny")
    items = {"item": list(TITLES), "raw_id": [str(i) for i in TITLES], "title": list(TITLES.values()), "text": list(TITLES.values())}
    _write(items, schemas.ITEM_COLUMNS, processed / "items.parquet")
    _write({"user": [1, 2], "raw_id": ["u1", "u2"]}, schemas.USERS, processed / "users.parquet")
    inter = {"user": [1, 1, 2, 2], "item": [1, 2, 3, 4], "timestamp": [10, 20, 30, 40], "split": ["train", "test", "train", "test"]}
    _write(inter, schemas.INTERACTIONS, processed / "interactions.parquet")
    cand = {"user": [1, 2], "split": ["test", "test"], "target": [2, 4], "negatives": [[3, 4], [1, 2]]}
    _write(cand, schemas.candidates_schema(2), processed / "candidates.parquet")
    # sequel 1 -> 2; items 1 and 3 are Action films; 1, 2 and 3 share a year bucket, 4 has its own.
    rel = {"head": [1, 1, 3, 1, 2, 3, 4], "relation": [1, 2, 2, 3, 3, 3, 3], "tail": [2, None, None, None, None, None, None],
           "value": [None, "1", "1", "1980", "1980", "1980", "1995"]}
    _write(rel, schemas.RELATIONS, processed / "relations.parquet")
    _write(_types(PREDEFINED), schemas.RELATION_TYPES, processed / "relation_types.parquet")
    _write(_types(PREDEFINED + LATENT), schemas.RELATION_TYPES, discovered / "relation_types.parquet")
    latent = {"head": [1, 1, 3, 2], "tail": [2, 3, 4, 4], "relation": [4, 4, 4, 5], "probability": [0.9, 0.25, 0.6, 0.7],
              "source": ["cooccur", "knn", "both", "cooccur"]}
    _write(latent, schemas.LATENT_RELATIONS, discovered / "latent.parquet")
    ranks = {"model": ["m1", "m1"], "seed": [1, 1], "split": ["test", "test"], "user": [1, 2], "target": [2, 4], "rank": [1, 3]}
    _write(ranks, schemas.RANKS, Path("results/tiny/m1/1/ranks.parquet"))
    # A run writes its ranks to a hidden temporary file first: those rows must not show.
    _write({**ranks, "model": ["m2", "m2"]}, schemas.RANKS, Path("results/tiny/m2/1/.ranks.parquet.tmp-0000"))
    from lrd.config.embed import EmbedConfig
    from lrd.embed.store import store_dir
    from lrd.paths import Paths

    manifest = store_dir(Paths("tiny"), EmbedConfig()) / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"model": "tiny-model", "backend": "sentence-transformers", "pooling": "mean", "dim": 8, "items": 4}))
    return tmp_path


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


def test_views_exist(repo):
    conn = open_views(PARAMS)
    assert tables(conn) == ["candidates", "embeddings", "interactions", "items", "latent", "ranks", "relation_types", "relations", "users"]
    counts = {name: n for name, n, _ in table_counts(conn)[1]}
    assert counts["items"] == 4 and counts["latent"] == 4 and counts["embeddings"] == 1
    assert counts["ranks"] == 2  # the hidden, in-progress model is left out
    # discover's relation_types (with the latent types) wins over ingest's.
    assert run_query(conn, "SELECT count(*) FROM relation_types WHERE kind = 'latent'")[1] == [(2,)]
    assert run_query(conn, "SELECT model, dim FROM embeddings")[1] == [("tiny-model", 8)]


def test_only_existing_tables_get_views(repo):
    for f in ("data/relations/tiny/relation_types.parquet", "data/relations/tiny/latent.parquet", "results/tiny/m1/1/ranks.parquet"):
        Path(f).unlink()
    conn = open_views(PARAMS)
    assert "latent" not in tables(conn) and "ranks" not in tables(conn)
    assert run_query(conn, "SELECT count(*) FROM relation_types")[1] == [(len(PREDEFINED),)]  # ingest's copy


def test_join_query(repo):
    conn = open_views(PARAMS)
    columns, rows = run_query(conn, """
        SELECT h.title AS head, t.title AS tail, l.probability
        FROM latent l JOIN relation_types r ON r.id = l.relation
        JOIN items h ON h.item = l.head JOIN items t ON t.item = l.tail
        WHERE r.name = 'latent_1' AND l.probability >= 0.5 ORDER BY l.probability DESC""")
    assert columns == ["head", "tail", "probability"]
    assert [(h, t) for h, t, _ in rows] == [("Alien", "Aliens"), ("Heat", "Toy Story")]
    assert rows[0][2] == pytest.approx(0.9)


def test_limit_and_statement_without_rows(repo):
    conn = open_views(PARAMS)
    assert len(run_query(conn, "SELECT * FROM items", limit=2)[1]) == 2
    assert run_query(conn, "SET threads = 1")[1] == []  # DuckDB answers with an empty "Success" column


def test_formats():
    columns, rows = ["id", "name", "p", "tags"], [(1, "Toy Story", 0.123456, ["a", "b"]), (10, None, 2.5e-9, [])]
    assert format_csv(columns, rows).splitlines() == ["id,name,p,tags", '1,Toy Story,0.123456,"[""a"", ""b""]"', "10,,2.5e-09,[]"]
    assert json.loads(format_json(columns, rows)) == [
        {"id": 1, "name": "Toy Story", "p": 0.123456, "tags": ["a", "b"]},
        {"id": 10, "name": None, "p": 2.5e-9, "tags": []},
    ]
    assert format_json(["x", "x"], [(1, 2)]) == '[\n{"x": 1, "x_1": 2}\n]'  # no key lost
    assert json.loads(format_json(["v"], [(float("nan"),)])) == [{"v": None}]
    lines = format_table(columns, rows, max_width=6).splitlines()
    assert lines[0].split() == ["id", "name", "p", "tags"]
    assert lines[2] == " 1  Toy S…     0.1235  [a, b]"  # numbers right-aligned, long text cut, numbers never
    assert lines[3] == "10  NULL    2.500e-09  []"


def test_syntax_error_keeps_duckdb_message(repo):
    conn = open_views(PARAMS)
    with pytest.raises(QueryError, match='Parser Error: syntax error at or near "SELEC"') as info:
        run_query(conn, "SELEC * FROM items")
    assert "\n" not in str(info.value)


def test_missing_table_lists_tables(repo):
    conn = open_views(PARAMS)
    with pytest.raises(QueryError, match="Table with name nope does not exist") as info:
        run_query(conn, "SELECT * FROM nope")
    assert "tables here: candidates, embeddings, interactions, items, latent, ranks" in str(info.value)


def test_cli_sql(repo):
    result = _cli("sql", "SELECT item, title FROM items ORDER BY item", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["item,title", "1,Alien", "2,Aliens", "3,Heat", "4,Toy Story"]
    result = _cli("sql", "SELECT item, title FROM items ORDER BY item", "--limit", "2")
    assert result.exit_code == 0
    assert "Aliens" in result.stdout and "Heat" not in result.stdout
    assert "--limit" in result.stderr  # says rows were left out


def test_cli_sql_tables(repo):
    result = _cli("sql", "--tables")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[2:] if not line.startswith("(")}
    assert rows["latent"] == "4" and rows["ranks"] == "2" and rows["items"] == "4"
    assert "data/processed/tiny/items.parquet" in result.stdout


def test_cli_sql_error_is_one_clean_line(repo):
    result = _cli("sql", "SELECT * FROM nope")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Catalog Error: Table with name nope does not exist")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_cli_relations_show(repo):
    result = _cli("relations", "show", "--type", "4", "--min-probability", "0")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("latent_1 (id 4): 3 pair(s)")
    assert "Alien" in lines[3] and "Aliens" in lines[3] and "0.9000" in lines[3]  # most probable first
    assert "Heat" in lines[4] and "Toy Story" in lines[4]
    by_name = _cli("relations", "show", "--type", "latent_1", "--min-probability", "0.5", "--format", "json")
    assert [r["tail_title"] for r in json.loads(by_name.stdout)] == ["Aliens", "Toy Story"]


def test_cli_relations_show_lists_confident_pairs_by_default(repo):
    """Without --min-probability: the pairs at discover.min_probability (0.5 by default; params.yaml can change it)."""
    result = _cli("relations", "show", "--type", "latent_1", "--format", "json")
    assert [r["probability"] for r in json.loads(result.stdout)] == pytest.approx([0.9, 0.6])
    Path("params.yaml").write_text(yaml.safe_dump({**PARAMS, "discover": {"min_probability": 0.8}}))
    assert "1 pair(s) with probability >= 0.8" in _cli("relations", "show", "--type", "latent_1").stdout


def test_cli_relations_show_says_when_a_type_has_no_confident_pairs(repo):
    Path("params.yaml").write_text(yaml.safe_dump({**PARAMS, "discover": {"min_probability": 0.95}}))
    result = _cli("relations", "show", "--type", "latent_2")
    assert result.exit_code == 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no pairs with probability >= 0.95" in lines[0] and "(1 in all)" in lines[0]
    assert "--min-probability 0" in lines[0] and "lrd relations types" in lines[0]


def test_cli_relations_readout(repo):
    """The readout on the tiny tables: latent_1's confident pairs (1-2, 3-4), their year share, the sources."""
    result = _cli("relations", "readout")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("| latent_1 |"))
    assert "2 of 3" in row and "1 / 0 / 1" in row  # cooccur 1-2, both 3-4
    assert "| 0.500, " in row  # 1-2 share the year bucket 1980, 3-4 do not
    assert "latent_2" in result.stdout and "**latent_1**" in result.stdout and "| Alien | Aliens | 0.9000 | n/a | cooccur |" in result.stdout


def test_cli_relations_unknown_type(repo):
    for spec in ("99", "1"):  # unknown, and predefined rather than latent
        result = _cli("relations", "show", "--type", spec)
        assert result.exit_code != 0
        assert "latent types: 4 latent_1, 5 latent_2" in result.stderr
        assert "Traceback" not in result.output
        assert isinstance(result.exception, SystemExit)  # exited on purpose, not crashed
    assert "predefined item-item type" in _cli("relations", "show", "--type", "1").stderr


def test_cli_relations_types(repo):
    result = _cli("relations", "types", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["latent_1"]["pairs"] == 3 and rows["latent_1"]["confident"] == 2
    assert rows["latent_2"]["pairs"] == 1 and rows["sequel"]["triples"] == 1 and rows["sequel"]["pairs"] is None


def test_relations_need_discover(repo):
    Path("data/relations/tiny/latent.parquet").unlink()
    result = _cli("relations", "show", "--type", "4")
    assert result.exit_code == 1 and "dvc repro discover" in result.stderr
    with pytest.raises(MissingUpstreamError):
        from lrd.sql import latent_pairs

        latent_pairs(open_views(PARAMS), 4, joint=True)


def test_cli_sql_runs_every_statement_and_shows_the_last(repo):
    result = CliRunner().invoke(main, ["sql", "CREATE VIEW few AS SELECT * FROM items WHERE item < 3; SELECT count(*) AS n FROM few", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines() == ["n", "2"]
    assert "2 statements given: all run, only the last one's result is shown" in result.stderr


def test_cli_sql_help_says_what_queries_can_reach():
    text = " ".join(CliRunner().invoke(main, ["sql", "--help"]).output.split())
    assert "nothing else: no other file, no URL" in text


@pytest.mark.parametrize("query", ["SELECT * FROM read_text('/proc/self/environ')", "INSTALL httpfs", "LOAD httpfs",
                                   "SELECT * FROM read_csv('http://example.invalid/x.csv')", "COPY items TO 'out.csv'",
                                   "SET enable_external_access = true", "ATTACH 'other.db'"])
def test_queries_reach_nothing_but_the_tables(repo, query, tmp_path):
    """Issue: lrd sql fetched and loaded extensions from the network and read any file (the API key in /proc/self/environ)."""
    conn = open_views(PARAMS)
    with pytest.raises(QueryError):
        run_query(conn, query)
    assert run_query(conn, "SELECT count(*) FROM items")[1][0][0] > 0  # the tables still read


def test_unconfined_queries_reach_other_files(repo, tmp_path):
    """The explicit opt-out: DuckDB's defaults, as before the confinement."""
    (tmp_path / "other.csv").write_text("a\n1\n")
    conn = open_views(PARAMS, confined=False)
    assert run_query(conn, f"SELECT a FROM read_csv('{tmp_path / 'other.csv'}')")[1] == [(1,)]
    result = CliRunner().invoke(main, ["sql", f"SELECT a FROM read_csv('{tmp_path / 'other.csv'}')", "--unconfined", "--format", "csv"])
    assert result.exit_code == 0 and result.output.split() == ["a", "1"], result.output


DOC = Path(__file__).resolve().parents[1] / "docs" / "sql-queries.md"


def test_every_query_in_the_sql_doc_runs(repo):
    """Each ```sql block of docs/sql-queries.md runs against the views (tiny tables)."""
    import re

    queries = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(queries) >= 3
    conn = open_views(PARAMS)
    for query in queries:
        columns, _ = run_query(conn, query)
        assert columns, query[:80]


def test_the_sql_doc_names_each_views_source(repo):
    """The doc's table of views gives the files open_views reads (with <ds> for the dataset)."""
    import re

    doc = {}
    for views, source in re.findall(r"^\| (`[^|]*`)[^|]* \| (`[^|]*`)[^|]*\|$", DOC.read_text(), flags=re.M):
        for view in re.findall(r"`(\w+)`", views):
            doc[view] = re.findall(r"`([^`]+)`", source)[0]
    conn = open_views(PARAMS)
    for view in tables(conn):
        assert view in doc, f"docs/sql-queries.md does not list the view {view}"
    expected = {"items": "data/processed/<ds>/", "relation_types": "data/relations/<ds>/relation_types.parquet",
                "latent": "data/relations/<ds>/latent.parquet", "ranks": "results/<ds>/<model>/<seed>/ranks.parquet",
                "embeddings": "data/embeddings/<ds>/<model>/manifest.json"}
    for view, path in expected.items():
        assert doc[view].startswith(path), (view, doc[view])


def test_the_help_example_names_a_latent_type_rather_than_an_id():
    """Ids shift with the predefined types a dataset has; the name latent_N does not."""
    import re

    examples = re.findall(r"lrd relations show --type (\S+)", main.help)
    assert examples and all(re.fullmatch(r"latent_\d+", t) for t in examples)


def test_control_characters_reach_the_terminal_escaped():
    """Issue: escape sequences in an item title cleared the screen and set the window title."""
    from lrd.format import printable

    table = format_table(["title"], [["Evil\x1b[2J\x1b]0;pwned\x07 Film"]])
    assert "\x1b" not in table and "\x07" not in table and "Evil\\x1b[2J\\x1b]0;pwned\\x07 Film" in table
    assert printable("Amélie (2001)") == "Amélie (2001)"
