"""The `scale` extra's Ray engines on a local 2-CPU Ray cluster: the same vectors and the same
latent table as the local engines, and what happens when Ray is missing, the cluster does not
answer, or a worker dies."""

import copy
import dataclasses
import json
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lrd.config.embed import EmbedConfig
from lrd.embed.pipeline import embed_items
from lrd.embed.store import EmbeddingStore
from lrd.errors import ConfigError, DistributedError
from lrd.paths import Paths
from stages import discover as discover_stage
from tests.conftest import upstream_workspace

try:
    import ray
    from lrd.discover.ray_engine import BucketLabeller
except ImportError:  # the scale extra is not installed: only the test of that error runs
    ray = BucketLabeller = None

needs_ray = pytest.mark.skipif(ray is None, reason="Ray (the scale extra) is not installed")
REPO = Path(__file__).resolve().parents[1]
P = Paths("tiny")
TEXTS = [f"Movie {i}: a story about {topic}" for i, topic in enumerate(["space", "robots", "love", "crime", "war", "dogs"] * 4)]


def items_table(texts=TEXTS):
    return pa.table({"item": pa.array(np.arange(1, len(texts) + 1), pa.int32()), "title": texts, "text": texts})


@pytest.fixture(scope="session")
def ray_cluster():
    """One small local cluster for every test here (starting one takes seconds): 2 CPUs, 200 MB object store."""
    address = os.environ.pop("RAY_ADDRESS", None)
    ray.init(num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False, logging_level="WARNING", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()
    if address is not None:
        os.environ["RAY_ADDRESS"] = address


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """ingest, embed and discover (local engines) on the tiny dataset, with row groups small enough for several head ranges."""
    return upstream_workspace(tmp_path_factory, "scale", row_group_size=150)


@pytest.fixture
def ws(workspace, monkeypatch):
    root, params = workspace
    monkeypatch.chdir(root)
    return root, copy.deepcopy(params)


def sorted_rows(path: Path) -> pa.Table:
    table = pq.read_table(path)
    return table.cast(pa.schema([f.with_type(pa.string()) if f.name == "source" else f for f in table.schema])).sort_by(
        [("head", "ascending"), ("tail", "ascending")])


def test_engine_ray_without_ray_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"`embed.engine: ray` needs Ray.*pip install -e '\.\[scale\]'"):
        embed_items(items_table(), EmbedConfig(engine="ray"), tmp_path / "store", cache_root=tmp_path / "cache")
    assert not (tmp_path / "store").exists() and not (tmp_path / "cache").exists()


@needs_ray
def test_a_ray_address_that_does_not_answer_fails_fast_writing_nothing(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    start = time.perf_counter()
    with pytest.raises(DistributedError, match=f"RAY_ADDRESS=127.0.0.1:{port}: no Ray cluster answers"):
        embed_items(items_table(), EmbedConfig(engine="ray"), tmp_path / "store", cache_root=tmp_path / "cache")
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "store").exists() and not (tmp_path / "cache").exists()


@needs_ray
def test_ray_embedding_equals_the_local_one(ray_cluster, tiny_llama, tmp_path):
    cfg = EmbedConfig(backend="hf-causal", model=str(tiny_llama), pooling="mean", batch_size=4)
    local = embed_items(items_table(), cfg, tmp_path / "local", cache_root=tmp_path / "c1")
    on_ray = embed_items(items_table(), dataclasses.replace(cfg, engine="ray", ray_workers=2), tmp_path / "ray",
                         cache_root=tmp_path / "c2")
    assert on_ray["encoded"] == len(TEXTS) and on_ray["device"] == ["ray:cpu", "ray:cpu"]
    a, b = EmbeddingStore.open(tmp_path / "local"), EmbeddingStore.open(tmp_path / "ray")
    assert np.array_equal(a.ids, b.ids)
    np.testing.assert_allclose(b.vectors, a.vectors, atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "local").iterdir()) == sorted(p.name for p in (tmp_path / "ray").iterdir())
    volatile = {"vectors_sha256", "index"}  # bit-level float noise may change the checksums
    assert {k: v for k, v in a.manifest.items() if k not in volatile} == {k: v for k, v in b.manifest.items() if k not in volatile}
    # Same cache as the local engine: a second run encodes nothing, and no shards are left behind.
    again = embed_items(items_table(), dataclasses.replace(cfg, engine="ray"), tmp_path / "again", cache_root=tmp_path / "c2")
    assert again["encoded"] == 0 and not list((tmp_path / "c2").glob(".ray-*"))
    assert local["dim"] == on_ray["dim"] == 32


class DiesOnce(BucketLabeller or object):
    """A labelling worker whose process is killed during its first bucket (as by the OOM killer or a lost node)."""

    marker = ""

    def __call__(self, batch):
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        return super().__call__(batch)


class AlwaysFails(BucketLabeller or object):
    def __call__(self, batch):
        raise RuntimeError("this worker cannot label")


@needs_ray
def test_ray_discover_writes_the_local_rows_even_when_a_worker_is_killed(ray_cluster, ws, monkeypatch, tmp_path):
    root, params = ws
    local_rows, local_metrics = sorted_rows(P.latent), json.loads(P.discover_metrics.read_text())
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers get these test classes by value
    monkeypatch.setattr(DiesOnce, "marker", str(tmp_path / "died"))
    monkeypatch.setattr("lrd.discover.ray_engine.BucketLabeller", DiesOnce)
    params["discover"] = {**params["discover"], "engine": "ray", "ray_workers": 2}
    discover_stage.run(params, "tiny")
    assert (tmp_path / "died").exists()  # a worker did die, and its bucket was labelled again
    assert sorted_rows(P.latent).equals(local_rows)
    assert pq.ParquetFile(P.latent).metadata.num_row_groups > 1  # one per head range
    metrics = json.loads(P.discover_metrics.read_text())
    assert metrics.pop("mean_entropy") == pytest.approx(local_metrics.pop("mean_entropy"), rel=1e-6)
    assert metrics == local_metrics


@needs_ray
def test_a_ray_job_that_keeps_failing_leaves_the_outputs_as_they_were(ray_cluster, ws, monkeypatch):
    root, params = ws
    before = {p: p.read_bytes() for p in (P.latent, P.discover_metrics, P.relation_types)}
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setattr("lrd.discover.ray_engine.BucketLabeller", AlwaysFails)
    params["discover"] = {**params["discover"], "engine": "ray"}
    with pytest.raises(DistributedError, match="the Ray job labelling candidate pairs failed: .*this worker cannot label"):
        discover_stage.run(params, "tiny")
    assert {p: p.read_bytes() for p in before} == before
    assert not list(P.latent.parent.glob(".latent.parquet.tmp-*"))
