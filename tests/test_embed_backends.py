"""The embed backends that need no model here: the OpenAI-compatible endpoint client against a
real local HTTP server (tests/embedding_server.py), and precomputed vector files."""

from __future__ import annotations

import json
import socket
import time
from types import SimpleNamespace

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lrd.embed import remote, vector_file
from lrd.embed.remote import BudgetError, RemoteEncoder, RemoteSettings
from lrd.embed.vector_file import load_vectors
from lrd.errors import ConfigError, DataError, ModelError
from tests.embedding_server import EmbeddingServer, count_tokens, expected_vector

DIM = 8
TEXTS = [f"item text number {i}" for i in range(20)]


# --------------------------------------------------------------------------------------------
# endpoint client


@pytest.fixture
def server():
    with EmbeddingServer(dim=DIM) as srv:
        yield srv


def encoder(server: EmbeddingServer, **overrides) -> RemoteEncoder:
    settings = {"base_url": server.base_url, "model": "test-embed", "api_key_env": None, "batch_size": 3,
                "concurrency": 4, "backoff_s": 0.001, "timeout_s": 2.0, "normalize": False, **overrides}
    return RemoteEncoder(RemoteSettings(**settings))


def expected(texts, normalize=False) -> np.ndarray:
    out = np.stack([expected_vector(t, DIM) for t in texts])
    return out / np.linalg.norm(out, axis=1, keepdims=True) if normalize else out


class Chunks:
    """on_chunk recorder: which indices arrived, and their vectors."""

    def __init__(self):
        self.indices, self.vectors = [], {}

    def __call__(self, indices, vectors):
        self.indices += indices.tolist()
        self.vectors.update(zip(indices.tolist(), vectors))


@pytest.mark.parametrize("encoding", ["base64", "float"])
def test_vectors_arrive_in_input_order_and_each_chunk_once(server, encoding):
    server.faults.extend(["reversed", None, "reversed"])  # answers listing vectors out of order
    chunks = Chunks()
    with encoder(server, encoding_format=encoding) as enc:
        vectors = enc.encode(TEXTS, progress=False, on_chunk=chunks)
    assert vectors.dtype == np.float32 and enc.dim == DIM
    np.testing.assert_array_equal(vectors, expected(TEXTS))
    assert sorted(chunks.indices) == list(range(len(TEXTS)))  # every index exactly once
    np.testing.assert_array_equal(np.stack([chunks.vectors[i] for i in range(len(TEXTS))]), vectors)
    assert len(server.requests) == 7 and enc.spent["requests"] == 7  # ceil(20 / 3)
    assert enc.spent["tokens"] == sum(count_tokens(t) for t in TEXTS) and enc.spent["tokens_estimated"] == 0


def test_instruction_and_normalisation(server):
    with encoder(server, instruction="query: ", normalize=True) as enc:
        vectors = enc.encode(TEXTS[:4], progress=False)
    assert server.requests[0]["input"][0] == "query: " + TEXTS[0]
    np.testing.assert_allclose(vectors, expected(["query: " + t for t in TEXTS[:4]], normalize=True), rtol=1e-6)


def test_429_500_and_a_timeout_are_retried(server):
    server.faults.extend(["429", "500", "slow"])
    server.retry_after, server.slow_s = "0.3", 1.0
    start = time.perf_counter()
    with encoder(server, concurrency=1, timeout_s=0.3) as enc:
        vectors = enc.encode(TEXTS[:6], progress=False)
    np.testing.assert_array_equal(vectors, expected(TEXTS[:6]))
    assert [r["fault"] for r in server.requests] == ["429", "500", "slow", None, None]
    assert server.requests[2]["input"] == server.requests[3]["input"]  # the timed-out batch, sent again
    assert time.perf_counter() - start >= 0.3 + 0.3  # Retry-After honoured, then the timeout


def test_wrong_key_stops_after_one_request(server, monkeypatch):
    server.api_key = "sk-right"
    monkeypatch.setenv("TEST_EMBED_KEY", "sk-wrong")
    with encoder(server, api_key_env="TEST_EMBED_KEY", concurrency=8) as enc:
        with pytest.raises(ModelError, match="refused the API key.*TEST_EMBED_KEY") as err:
            enc.encode(TEXTS, progress=False)
    assert len(server.requests) == 1 and "sk-wrong" not in str(err.value)
    assert server.requests[0]["auth"] == "Bearer sk-wrong"


def test_no_key_where_one_is_wanted(server):
    server.api_key = "sk-right"
    with encoder(server) as enc, pytest.raises(ModelError, match="wants an API key.*`embed.api_key_env`"):
        enc.encode(TEXTS, progress=False)
    assert len(server.requests) == 1


def test_right_key_is_sent_and_never_in_the_identity(server, monkeypatch):
    server.api_key = "sk-right"
    monkeypatch.setenv("TEST_EMBED_KEY", "sk-right")
    with encoder(server, api_key_env="TEST_EMBED_KEY") as enc:
        enc.encode(TEXTS[:3], progress=False)
        assert "sk-right" not in json.dumps(remote.identity(enc.s)) + repr(enc.s)


def test_missing_key_variable_is_a_config_error(server, monkeypatch):
    monkeypatch.delenv("TEST_EMBED_KEY", raising=False)
    with pytest.raises(ConfigError, match="TEST_EMBED_KEY.*not set"):
        encoder(server, api_key_env="TEST_EMBED_KEY")


@pytest.mark.parametrize(
    "fault, message",
    [("malformed", "malformed answer"), ("fewer", "returned 2 vectors for 3 inputs"), ("noindex", "malformed answer")],
)
def test_bad_answers_fail_at_once(server, fault, message):
    server.faults.append(fault)
    with encoder(server) as enc, pytest.raises(ModelError, match=message):
        enc.encode(TEXTS, progress=False)
    assert len(server.requests) == 1


def test_a_failure_stops_sending_and_keeps_what_arrived(server):
    server.faults.extend([None, None, "500"])  # the third request fails, and is not retried
    chunks = Chunks()
    with encoder(server, batch_size=1, concurrency=2, max_retries=0) as enc, pytest.raises(ModelError, match="HTTP 500.*on all 1 attempts"):
        enc.encode(TEXTS, progress=False, on_chunk=chunks)
    assert len(server.requests) <= 5  # of 20: the one in flight beside the failure, then nothing
    # every answered batch reached on_chunk once, also those that came back after the failure
    assert sorted(chunks.indices) == sorted(set(chunks.indices)) and len(chunks.indices) == len(server.requests) - 1
    np.testing.assert_array_equal(np.stack([chunks.vectors[i] for i in chunks.indices]), expected([TEXTS[i] for i in chunks.indices]))


def test_request_budget_stops_before_passing_it(server):
    chunks = Chunks()
    with encoder(server, max_requests=3, concurrency=4) as enc:
        with pytest.raises(BudgetError, match=r"max_requests.*\(3\) reached; spent 3 requests.* 9 of 20 texts were embedded") as err:
            enc.encode(TEXTS, progress=False, on_chunk=chunks)
    assert len(server.requests) == 3 and sorted(chunks.indices) == sorted(set(chunks.indices)) and len(chunks.indices) == 9
    assert "raise the limit" in str(err.value)


@pytest.mark.parametrize("report_usage", [True, False])
def test_token_budget_is_never_passed(server, report_usage):
    server.report_usage = report_usage
    limit = sum(count_tokens(t) for t in TEXTS) // 2
    chunks = Chunks()
    with encoder(server, max_tokens=limit, concurrency=4) as enc:
        with pytest.raises(BudgetError, match="would pass `embed.max_tokens`"):
            enc.encode(TEXTS, progress=False, on_chunk=chunks)
    billed = sum(count_tokens(t) for r in server.requests for t in r["input"])
    assert billed <= limit and 0 < len(chunks.indices) < len(TEXTS)
    assert enc.spent["tokens"] <= limit and (enc.spent["tokens_estimated"] > 0) != report_usage


def test_endpoint_down_gives_up_after_the_retries():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = RemoteSettings(base_url=f"http://127.0.0.1:{port}/v1", model="m", api_key_env=None, max_retries=2, backoff_s=0.001)
    with RemoteEncoder(settings) as enc, pytest.raises(ModelError, match="cannot reach the server.*on all 3 attempts"):
        enc.encode(TEXTS, progress=False)
    assert enc.spent["requests"] == 3


def test_wrong_path_is_not_retried(server):
    with encoder(server, base_url=server.base_url + "/nope") as enc, pytest.raises(ModelError, match="HTTP 404"):
        enc.encode(TEXTS, progress=False)
    assert enc.spent["requests"] == 1


def test_settings_from_a_config_object():
    cfg = SimpleNamespace(base_url="http://x/v1", model="m", concurrency=3, device="cpu", normalize=False)
    settings = RemoteSettings.from_config(cfg)  # unknown attributes ignored, absent ones defaulted
    assert (settings.concurrency, settings.normalize, settings.batch_size) == (3, False, 64)


@pytest.mark.parametrize(
    "value, seconds",
    [("2", 2.0), ("0.5", 0.5), ("soon", None), (None, None)],
)
def test_retry_after_header(value, seconds):
    headers = {"Retry-After": value} if value is not None else {}
    assert remote._retry_after(httpx.Response(429, headers=headers)) == seconds


def test_retry_after_as_a_date():
    from email.utils import formatdate

    wait = remote._retry_after(httpx.Response(429, headers={"Retry-After": formatdate(time.time() + 30, usegmt=True)}))
    assert 25 < wait <= 30


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="base_url"):
        RemoteSettings(base_url="localhost:8000", model="m")
    with pytest.raises(ConfigError, match="base_url` is None"):
        RemoteSettings.from_config(SimpleNamespace(base_url=None, model="m"))
    with pytest.raises(ConfigError, match="concurrency"):
        RemoteSettings(base_url="http://x", model="m", concurrency=0)


# --------------------------------------------------------------------------------------------
# vector files

RAW_IDS = ["B00A", "B00B", "B00C", "B00D", "B00E"]
VECS = np.arange(1, 5 * 4 + 1, dtype=np.float64).reshape(5, 4) / 7  # row i: item i + 1


def items(raw_ids=RAW_IDS) -> pa.Table:
    return pa.table({"item": pa.array(np.arange(1, len(raw_ids) + 1), pa.int32()), "raw_id": pa.array(raw_ids, pa.string())})


def write_parquet(path, ids, vectors, list_type=None):
    vtype = list_type or pa.list_(pa.float64())
    pq.write_table(pa.table({"id": ids, "vector": pa.array([list(v) for v in vectors], vtype)}), path)
    return path


def test_parquet_by_raw_id_in_any_order_with_extra_ids(tmp_path):
    order = [3, 0, 4, 2, 1]
    path = write_parquet(tmp_path / "v.parquet", [RAW_IDS[i] for i in order] + ["DROPPED"], np.vstack([VECS[order], np.ones(4)]))
    out = load_vectors(path, items(), normalize=False)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, VECS, rtol=1e-6)


@pytest.mark.parametrize("value_type", [pa.float16(), pa.float32(), pa.float64()])
def test_parquet_by_integer_id_fixed_size_lists(tmp_path, value_type):
    path = write_parquet(tmp_path / "v.parquet", pa.array([5, 4, 3, 2, 1], pa.int64()), VECS[::-1], pa.list_(value_type, 4))
    out = load_vectors(path, items(), dim=4, normalize=True)
    want = VECS.astype(value_type.to_pandas_dtype()).astype(np.float32)
    np.testing.assert_allclose(out, want / np.linalg.norm(want, axis=1, keepdims=True), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_npy_with_a_text_id_list(tmp_path, dtype):
    np.save(tmp_path / "emb.npy", VECS[::-1].astype(dtype))
    (tmp_path / "emb.ids.txt").write_text("\n".join(RAW_IDS[::-1]) + "\n")
    out = load_vectors(tmp_path / "emb.npy", items(), normalize=False)
    np.testing.assert_array_equal(out, VECS.astype(dtype).astype(np.float32))


def test_npy_from_another_store_folder(tmp_path):
    np.save(tmp_path / "vectors.npy", VECS.astype(np.float32))
    np.save(tmp_path / "ids.npy", np.arange(1, 6, dtype=np.int32))
    np.testing.assert_array_equal(load_vectors(tmp_path / "vectors.npy", items(), normalize=False), VECS.astype(np.float32))


def test_reference_feat_file(tmp_path):
    # The reference's ids: row k is item k + 1; ReChorus raw ids are those integers as strings.
    path = tmp_path / "Office.feat.GPT"
    np.vstack([VECS, np.ones((2, 4))]).tofile(path)  # two more items than the dataset kept
    rechorus = items([str(i) for i in range(1, 6)])
    np.testing.assert_allclose(load_vectors(path, rechorus, dim=4, normalize=False), VECS, rtol=1e-6)
    VECS.astype(np.float32).tofile(tmp_path / "Office.featLAST.x")
    np.testing.assert_allclose(load_vectors(tmp_path / "Office.featLAST.x", rechorus, dim=4, normalize=False, feat_dtype="float32"), VECS, rtol=1e-6)


def test_raw_integer_ids_that_also_look_like_item_ids_must_be_named(tmp_path):
    # MovieLens-like: raw ids are integers too, and differ from the renumbered item ids.
    path = write_parquet(tmp_path / "v.parquet", pa.array([10, 20, 30, 1, 2, 3, 4, 5]), np.vstack([VECS[[4, 3, 2]], VECS]))
    table = items(["10", "20", "30", "4", "5"])
    with pytest.raises(ConfigError, match="embed.ids: raw` or `embed.ids: item"):
        load_vectors(path, table, normalize=False)
    np.testing.assert_allclose(load_vectors(path, table, normalize=False, ids="item"), VECS, rtol=1e-6)
    np.testing.assert_allclose(load_vectors(path, table, normalize=False, ids="raw"), VECS[[4, 3, 2, 3, 4]], rtol=1e-6)


def test_missing_items_are_named(tmp_path):
    path = write_parquet(tmp_path / "v.parquet", RAW_IDS[:1], VECS[:1])
    with pytest.raises(DataError, match=r"v.parquet: no vector for 4 of 5 items \(matched by raw id\), e.g. \['B00B', 'B00C', 'B00D'\]"):
        load_vectors(path, items())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_rows_are_named(tmp_path, bad):
    vecs = VECS.copy()
    vecs[[1, 3], 2] = bad
    path = write_parquet(tmp_path / "v.parquet", RAW_IDS, vecs)
    with pytest.raises(DataError, match=r"2 vector\(s\) hold NaN or inf.*\['B00B', 'B00D'\]"):
        load_vectors(path, items())


def test_float64_overflowing_float32_is_caught(tmp_path):
    vecs = VECS.copy()
    vecs[0, 0] = 1e300
    np.save(tmp_path / "v.npy", vecs)
    np.save(tmp_path / "v.ids.npy", np.array(RAW_IDS))
    with pytest.raises(DataError, match=r"overflow float32.*\['B00A'\]"):
        load_vectors(tmp_path / "v.npy", items())


def test_ids_matching_neither_say_what_was_expected(tmp_path):
    path = write_parquet(tmp_path / "v.parquet", ["x1", "x2", "x3"], VECS[:3])
    with pytest.raises(DataError, match=r"found ids like \['x1', 'x2', 'x3'\], expected raw item ids like \['B00A', 'B00B', 'B00C'\] or integer item ids 1..5"):
        load_vectors(path, items())


def test_wrong_dimension(tmp_path):
    path = write_parquet(tmp_path / "v.parquet", RAW_IDS, VECS)
    with pytest.raises(DataError, match=r"dimension 4, but `embed.vector_dim` is 8; set `embed.vector_dim: 4`"):
        load_vectors(path, items(), dim=8)


def test_feat_size_not_a_multiple_of_the_dimension(tmp_path):
    path = tmp_path / "Office.feat.GPT"
    VECS.tofile(path)  # 5 x 4 float64 = 160 bytes
    with pytest.raises(DataError, match=r"160 bytes is not a whole number of 3-d float64 rows.*would make it 4"):
        load_vectors(path, items([str(i) for i in range(1, 6)]), dim=3)
    with pytest.raises(ConfigError, match="embed.vector_dim` is required"):
        load_vectors(path, items(), dim=None)


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: write_parquet(p / "v.parquet", RAW_IDS + ["B00A"], np.vstack([VECS, VECS[:1]])), r"1 id\(s\) appear more than once, e.g. \['B00A'\]"),
        (lambda p: pq.write_table(pa.table({"item_id": RAW_IDS}), p / "v.parquet"), "needs columns `id` and `vector`, found item_id"),
        (lambda p: write_parquet(p / "v.parquet", RAW_IDS[:2], [[1.0, 2.0], [1.0]]), "different lengths"),
        (lambda p: write_parquet(p / "v.parquet", RAW_IDS, np.vstack([VECS[:4], np.zeros(4)])), r"all zeros.*\['B00E'\]"),
        (lambda p: np.save(p / "v.npy", VECS), "no id list beside it; write the row ids to v.ids.npy"),
    ],
)
def test_bad_files(tmp_path, setup, message):
    setup(tmp_path)
    path = next(tmp_path.glob("v.*"))
    with pytest.raises(DataError, match=message):
        load_vectors(path, items())


def test_unknown_file_type_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown vector file type"):
        load_vectors(tmp_path / "v.csv", items())
    with pytest.raises(DataError, match="vector file not found"):
        load_vectors(tmp_path / "v.npy", items())


def test_identity_follows_the_content_not_the_path(tmp_path):
    a = write_parquet(tmp_path / "a.parquet", RAW_IDS, VECS)
    b = tmp_path / "elsewhere" / "b.parquet"
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())
    assert vector_file.identity(a) == vector_file.identity(b)
    write_parquet(b, RAW_IDS, VECS * 2)
    assert vector_file.identity(a)["sha256"] != vector_file.identity(b)["sha256"]


# --------------------------------------------------------------------------------------------
# the embed stage's pipeline with these backends


def _items(texts) -> pa.Table:
    return pa.table({"item": pa.array(np.arange(1, len(texts) + 1), pa.int32()), "raw_id": [f"r{i}" for i in range(len(texts))],
                     "title": texts, "text": texts})


def test_endpoint_store_resumes_after_a_stop_and_a_rerun_asks_nothing(server, tmp_path):
    from lrd.config.embed import EmbedConfig
    from lrd.embed.pipeline import embed_items
    from lrd.embed.store import EmbeddingStore

    cfg = dict(backend="openai", model="test-embed", base_url=server.base_url, api_key_env=None, batch_size=4, concurrency=1, normalize=False)
    with pytest.raises(BudgetError):
        embed_items(_items(TEXTS), EmbedConfig(**cfg, max_requests=2), tmp_path / "s0", tmp_path / "cache")
    assert len(server.requests) == 2  # 8 texts paid for, kept in the cache
    first = embed_items(_items(TEXTS), EmbedConfig(**cfg), tmp_path / "s1", tmp_path / "cache")
    assert (first["encoded"], first["from_cache"]) == (12, 8) and len(server.requests) == 5
    again = embed_items(_items(TEXTS), EmbedConfig(**cfg), tmp_path / "s2", tmp_path / "cache")
    assert (again["encoded"], again["from_cache"]) == (0, 20) and len(server.requests) == 5
    assert np.allclose(EmbeddingStore.open(tmp_path / "s2").vectors, expected(TEXTS), atol=1e-6)
    assert "key" not in json.dumps(again["identity"]).lower()


def test_vector_file_backend_builds_a_store(tmp_path):
    from lrd.config.embed import EmbedConfig
    from lrd.embed.pipeline import embed_items
    from lrd.embed.store import EmbeddingStore

    vectors = np.random.default_rng(0).normal(size=(len(TEXTS), 6)).astype(np.float32)
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(len(TEXTS))], "vector": list(vectors)}), tmp_path / "v.parquet")
    out = embed_items(_items(TEXTS), EmbedConfig(backend="file", path=str(tmp_path / "v.parquet"), normalize=False), tmp_path / "s", tmp_path / "cache")
    assert out["dim"] == 6 and out["device"] == ["file"]
    assert np.allclose(EmbeddingStore.open(tmp_path / "s").vectors, vectors)
