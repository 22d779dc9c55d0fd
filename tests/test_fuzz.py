"""Fuzz the readers, ingest and the ingest/dataset params with hypothesis (issue 12).

Property: whatever the files or params hold, the result is either a DataError/ConfigError with
a one-line message that names the file or the param, or valid tables (ids 1..n, candidates
inside the catalog, dates a datetime can show, non-empty item texts, stats that serialise).
Never another exception, never a hang.

Each example starts from a small valid dataset of one format (the ones tests/test_readers.py
writes) and applies up to four mutations: a field set to a nasty value (empty, NaN, inf, 1e20,
huge integers, text, lists, bad UTF-8), lines dropped, repeated or blanked, bytes inserted,
the file truncated (also inside the gzip stream), a BOM, CRLF line ends, an empty or missing
file.

Profiles (hypothesis settings profiles, chosen by an environment variable):
    default: a fixed (derandomized) set of examples, under a minute in `make test`;
    long:    many random examples, for a run by hand:

    LRD_FUZZ_PROFILE=long OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_fuzz.py

No example database is written (the repository stays clean); a failure prints the example
and the @reproduce_failure line to re-run it.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrd import schemas
from lrd.config.base import build
from lrd.config.datasets import DatasetConfig, SourceConfig
from lrd.config.ingest import IngestConfig
from lrd.data.ingest import ingest
from lrd.data.readers import read_dataset
from lrd.data.readers.base import SECONDS_MAX, SECONDS_MIN
from lrd.errors import ConfigError, DataError
from tests.conftest import write_recbole
from tests.test_readers import FULL_TEXT, write_amazon2014, write_amazon2018, write_ml100k, write_ml1m, write_rechorus

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("default", max_examples=60, deadline=None, derandomize=True, database=None,
                          suppress_health_check=_QUIET, print_blob=True)
settings.register_profile("long", max_examples=1500, deadline=None, database=None, suppress_health_check=_QUIET,
                          print_blob=True)
PROFILE = settings.get_profile(os.environ.get("LRD_FUZZ_PROFILE", "default"))


# --------------------------------------------------------------------------------------------
# the datasets and how their files split into fields


def _recbole(folder: Path) -> Path:
    return write_recbole(folder, n_users=6, n_items=8, per_user=4, seed=1)


def _rechorus_reference(folder: Path) -> Path:
    write_rechorus(folder, text=None)
    (folder / "Office.item2index").write_text("".join(f"B{i:04d}\t{i}\n" for i in range(1, 7)))
    (folder / "Office.text").write_text("id\ttext\n" + "".join(f"B{i:04d}\tThing {i}\n" for i in range(1, 7)))
    return folder


DATASETS = {
    "recbole": (_recbole, "recbole"),
    "ml-100k": (write_ml100k, "movielens"),
    "ml-1m": (write_ml1m, "movielens"),
    "amazon2014": (write_amazon2014, "amazon2014"),
    "amazon2018": (write_amazon2018, "amazon2018"),
    "rechorus": (lambda f: write_rechorus(f, text=FULL_TEXT), "rechorus"),
    "rechorus-reference": (_rechorus_reference, "rechorus"),
}


def _delimiter(path: Path) -> bytes | None:
    """How a file's lines split into fields (None: JSON or Python-literal lines)."""
    if path.name.endswith((".json", ".json.gz")):
        return None
    return {"u.item": b"|", "u.genre": b"|", "ratings.dat": b"::", "movies.dat": b"::"}.get(path.name, b"\t")


NASTY = ["", " ", "nan", "NaN", "inf", "-inf", "1e20", "-1", "0", "1", "99999999999999999999", "1.5", "x", "\ufeff",
         "é", "None", "[]", "[1, 1, 1]", "[0]", "[-5, 2, 99]", "[1 2 3]", "[2, x]", "1700000000000", "1700000000000000000",
         "880000000", "1e308", "\"quoted\"", "a\tb", "{title}"]
FIELD_VALUES = st.one_of(
    st.sampled_from(NASTY),
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(repr),
    st.text(max_size=6),
    st.lists(st.integers(-3, 12), max_size=5).map(str),
)
JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=6),
    st.lists(st.one_of(st.text(max_size=3), st.integers(-3, 12)), max_size=3), st.sampled_from(["", " ", "A1", "U1"]),
)
JSON_KEYS = ["reviewerID", "asin", "unixReviewTime", "title", "brand", "categories", "category", "related", "also_buy",
             "also_view", "description"]

MUTATION = st.one_of(
    st.tuples(st.just("field"), st.integers(0, 50), st.integers(0, 50), st.integers(0, 6), FIELD_VALUES),
    st.tuples(st.just("json"), st.integers(0, 50), st.integers(0, 50), st.sampled_from(JSON_KEYS), JSON_VALUES),
    st.tuples(st.just("line"), st.integers(0, 50), st.integers(0, 50), st.sampled_from(["drop", "repeat", "blank", "cut"])),
    st.tuples(st.just("bytes"), st.integers(0, 50), st.floats(0, 1),
              st.sampled_from([b"\xff", b"\x00", b"\r", b"\n", b"\t", b"\xef\xbb\xbf", b"\xc3", b"[", b"'"])),
    st.tuples(st.just("file"), st.integers(0, 50),
              st.sampled_from(["truncate", "truncate-gz", "bom", "crlf", "empty", "delete", "latin1", "fake-gz"]), st.floats(0, 1)),
)


def _decoded(path: Path) -> bytes:
    data = path.read_bytes()
    try:
        return gzip.decompress(data) if path.suffix == ".gz" else data
    except Exception:  # an earlier mutation broke the gzip stream: mutate the raw bytes
        return data


def _store(path: Path, data: bytes) -> None:
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


def _mutate(folder: Path, mutation: tuple) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        return
    kind, pick = mutation[0], mutation[1]
    path = files[pick % len(files)]
    if kind == "file":
        _mutate_file(path, mutation[2], mutation[3])
        return
    data = _decoded(path)
    if kind == "bytes":
        at = int(mutation[2] * len(data))
        _store(path, data[:at] + mutation[3] + data[at:])
        return
    lines = data.split(b"\n")
    n = mutation[2] % len(lines)
    if kind == "line":
        action = mutation[3]
        if action == "drop":
            del lines[n]
        elif action == "repeat":
            lines.insert(n, lines[n])
        elif action == "blank":
            lines.insert(n, b"")
        else:
            lines[n] = lines[n][: len(lines[n]) // 2]
    elif kind == "field":
        sep = _delimiter(path)
        if sep is None:
            return
        fields = lines[n].split(sep)
        fields[mutation[3] % len(fields)] = mutation[4].encode("utf-8", "surrogatepass")
        lines[n] = sep.join(fields)
    elif kind == "json":
        lines[n] = _json_field(lines[n], mutation[3], mutation[4], path)
    _store(path, b"\n".join(lines))


def _json_field(line: bytes, key: str, value, path: Path) -> bytes:
    if _delimiter(path) is not None:
        return line
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        record = None
    if isinstance(record, dict):
        record[key] = value
        return json.dumps(record).encode()
    try:
        import ast

        record = ast.literal_eval(line.decode())
    except Exception:
        return line
    if isinstance(record, dict):
        record[key] = value
        return repr(record).encode()
    return line


def _mutate_file(path: Path, action: str, where: float) -> None:
    raw = path.read_bytes()
    if action == "truncate":
        path.write_bytes(raw[: int(where * len(raw))])
    elif action == "truncate-gz" and path.suffix == ".gz":
        path.write_bytes(raw[: max(10, int(where * len(raw)))])
    elif action == "fake-gz" and path.suffix == ".gz":
        path.write_bytes(_decoded(path))
    elif action == "bom":
        _store(path, b"\xef\xbb\xbf" + _decoded(path))
    elif action == "crlf":
        _store(path, _decoded(path).replace(b"\n", b"\r\n"))
    elif action == "empty":
        _store(path, b"")
    elif action == "delete":
        path.unlink()
    elif action == "latin1":
        try:
            _store(path, _decoded(path).decode("utf-8").encode("latin-1", "replace"))
        except UnicodeDecodeError:
            pass


# --------------------------------------------------------------------------------------------
# the property


def _outcome(fmt: str, folder: Path, cfg: IngestConfig, *, messages_name: str) -> None:
    """Read + ingest: an LRD error with a one-line message naming `messages_name`, or valid tables."""
    try:
        result = ingest(read_dataset(fmt, folder, cfg), cfg)
    except (DataError, ConfigError) as exc:
        message = str(exc)
        assert message.strip() and "\n" not in message, message
        assert messages_name in message or "ingest." in message or "params.yaml" in message, message
        return
    _check_tables(result)


def _check_tables(result) -> None:
    inter = result.interactions
    assert inter.schema.equals(schemas.INTERACTIONS, check_metadata=False)
    n_users, n_items = result.stats["users"], result.stats["items"]
    users, items = inter.column("user").to_numpy(), inter.column("item").to_numpy()
    assert set(np.unique(users)) == set(range(1, n_users + 1))
    assert items.min() >= 1 and items.max() <= n_items
    ts = inter.column("timestamp").to_numpy()
    assert ts.min() >= SECONDS_MIN and ts.max() <= SECONDS_MAX
    assert np.all(np.diff(ts) >= 0)
    assert set(inter.column("split").to_pylist()) <= set(schemas.SPLITS)
    table = result.items
    assert table.column("item").to_pylist() == list(range(1, n_items + 1))
    assert all(t and t.strip() for t in table.column("text").to_pylist())
    raw_ids = table.column("raw_id").to_pylist()
    assert all(r and r.strip() for r in raw_ids) and len(set(raw_ids)) == len(raw_ids)
    cand = result.candidates
    k = result.stats["n_negatives"]
    assert cand.schema.field("negatives").type.list_size == k >= 1
    negatives = np.asarray(pc.list_flatten(cand.column("negatives")))
    targets = cand.column("target").to_numpy()
    if len(negatives):
        assert negatives.min() >= 1 and negatives.max() <= n_items
    if len(targets):
        assert targets.min() >= 1 and targets.max() <= n_items
    assert cand.num_rows == pc.sum(pc.not_equal(inter.column("split"), "train")).as_py()
    rel = result.relations
    for column in ("head", "tail"):
        values = rel.column(column).drop_null().to_numpy()
        assert len(values) == 0 or (values.min() >= 1 and values.max() <= n_items)
    json.dumps(result.stats)  # serialisable: numpy types would fail here


@settings(PROFILE)
@pytest.mark.parametrize("dataset", list(DATASETS))
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_readers_and_ingest_on_malformed_files(dataset, mutations):
    write, fmt = DATASETS[dataset]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "raw"
        folder.mkdir()
        write(folder)
        for mutation in mutations:
            _mutate(folder, mutation)
        cfg = IngestConfig(seed=0, min_core=1, n_negatives=None if fmt == "rechorus" else 1)
        _outcome(fmt, folder, cfg, messages_name=str(folder))


# --------------------------------------------------------------------------------------------
# params


ANY_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), st.text(max_size=12),
              st.sampled_from(["{title}", "{title}[ ({year})]", "{nope}", "[{genres}]", "{text}", "title", "1e-3"])),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)),
    max_leaves=6,
)
INGEST_KEYS = [f for f in IngestConfig.__dataclass_fields__] + ["min_cores", "bucket_edges"]
INGEST_VALUES = {
    "seed": st.integers(-5, 2**33),
    "min_core": st.integers(-2, 12),
    "n_negatives": st.one_of(st.none(), st.integers(-2, 12), st.just(100_001)),
    "text_template": st.one_of(st.none(), st.sampled_from(["{title}", "{title}[ ({year})][. Genres: {genres}]", "{genres}",
                                                           "{brand}", "x", "", "[{title}", "{title}]", "{{title}}"])),
    "text_fallback": st.sampled_from(["title", "error", "other"]),
    "attributes": st.one_of(st.none(), st.dictionaries(st.sampled_from(["genres", "year", "title", "brand", "", "nope"]),
                                                       st.one_of(st.just({}), st.fixed_dictionaries(
                                                           {"bucket_edges": st.lists(st.floats(), max_size=4)})), max_size=3)),
    "kg_relations": st.one_of(st.none(), st.just({}), st.dictionaries(
        st.sampled_from(["film.film.sequel", "film.film.directed_by", "film.film.starring", ""]),
        st.sampled_from(["sequel", "director", "a b", ""]), max_size=2)),
    "max_items_per_value": st.integers(-1, 5),
    "item_links": st.one_of(st.booleans(), st.just("yes")),
    "accept_candidates": st.lists(st.sampled_from(["repeated_negatives", "target_in_negatives", "interacted_negatives",
                                                   "several_rows_per_user", "repeats"]), max_size=3),
}
INGEST_PARAMS = st.dictionaries(
    st.sampled_from(INGEST_KEYS), ANY_VALUE, max_size=3
).flatmap(lambda junk: st.fixed_dictionaries({}, optional={k: v for k, v in INGEST_VALUES.items()}).map(lambda good: {**junk, **good}))


def _config_message(exc: ConfigError, params) -> None:
    # One line, unless params.yaml itself holds a key with a line break (echoed as written).
    message = str(exc)
    assert message.startswith("params.yaml"), message
    assert "\n" not in message or _has_line_break(params), message


def _has_line_break(value) -> bool:
    if isinstance(value, str):
        return "\n" in value or "\r" in value
    if isinstance(value, dict):
        return any(_has_line_break(k) or _has_line_break(v) for k, v in value.items())
    return isinstance(value, (list, tuple)) and any(map(_has_line_break, value))


def _valid_ingest_config(cfg: IngestConfig) -> None:
    assert isinstance(cfg.seed, int) and cfg.seed >= 0
    assert cfg.min_core >= 0 and cfg.max_items_per_value >= 2
    assert cfg.n_negatives is None or 1 <= cfg.n_negatives <= 100_000
    for spec in (cfg.attributes or {}).values():
        edges = spec.bucket_edges or ()
        assert all(math.isfinite(e) for e in edges) and list(edges) == sorted(set(edges))


@settings(PROFILE, max_examples=PROFILE.max_examples * 8)
@given(params=INGEST_PARAMS)
def test_ingest_params_from_random_dicts(params):
    try:
        cfg = IngestConfig.from_params({"ingest": params})
    except ConfigError as exc:
        _config_message(exc, params)
        return
    _valid_ingest_config(cfg)


@settings(PROFILE, max_examples=PROFILE.max_examples * 2)
@given(params=INGEST_PARAMS.filter(lambda p: "min_cores" not in p and "bucket_edges" not in p))
def test_ingest_with_random_valid_params(params):
    try:
        cfg = IngestConfig.from_params({"ingest": params})
    except ConfigError:
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = _recbole(Path(tmp) / "raw")
        _outcome("recbole", folder, cfg, messages_name=str(folder))


SOURCE = st.fixed_dictionaries({}, optional={
    "kind": st.sampled_from(["pypi-wheel", "url", "files", "path", "ftp"]),
    "files": st.one_of(st.none(), ANY_VALUE, st.just({"a.csv": "ab" * 32}), st.just({"../a": "ab" * 32})),
    "mirror": st.one_of(st.none(), st.text(max_size=8)),
    "package": st.one_of(st.none(), st.text(max_size=8)),
    "url": st.one_of(st.none(), st.text(max_size=8), st.just("https://example.org/x.zip")),
    "path": st.one_of(st.none(), st.text(max_size=8)),
    "sha256": st.one_of(st.none(), st.text(max_size=8), st.just("ab" * 32)),
    "member": st.one_of(st.none(), st.text(max_size=8)),
})


@settings(PROFILE, max_examples=PROFILE.max_examples * 8)
@given(dataset=st.one_of(ANY_VALUE, st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.text(max_size=8), st.just("ml-100k"), st.integers()),
    "format": st.sampled_from(["recbole", "movielens", "amazon2014", "amazon2018", "rechorus", "csv"]),
    "source": st.one_of(SOURCE, ANY_VALUE),
    "extra": ANY_VALUE,
})))
def test_dataset_params_from_random_dicts(dataset):
    try:
        cfg = build(DatasetConfig, dataset, "dataset")
    except ConfigError as exc:
        _config_message(exc, dataset)
        return
    assert cfg.name and isinstance(cfg.source, SourceConfig)
    need = {"pypi-wheel": "package", "url": "url", "files": "files", "path": "path"}[cfg.source.kind]
    assert getattr(cfg.source, need) is not None
