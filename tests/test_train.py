"""discover and train on a tiny dataset, in-process (the DVC end-to-end test is separate)."""

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from lrd.errors import ConfigError, MissingUpstreamError, ModelError
from stages import discover as discover_stage
from stages import embed as embed_stage
from stages import ingest as ingest_stage
from stages import train as train_stage
from tests.conftest import tiny_params, write_recbole


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder where ingest, embed and discover have run on the tiny dataset."""
    root = tmp_path_factory.mktemp("ws")
    raw = write_recbole(root / "source")
    params = tiny_params(raw)
    cwd = Path.cwd()
    try:
        import os

        os.chdir(root)
        shutil.copytree(raw, Path("data/raw/tiny"))
        ingest_stage.run(params)
        embed_stage.run(params)
        discover_stage.run(params)
    finally:
        os.chdir(cwd)
    return root, params


@pytest.fixture
def ws(workspace, monkeypatch):
    root, params = workspace
    monkeypatch.chdir(root)
    return root, copy.deepcopy(params)


def test_discover_outputs(ws):
    latent = pq.read_table("data/relations/tiny/latent.parquet")
    types = pq.read_table("data/relations/tiny/relation_types.parquet").to_pylist()
    latent_ids = [t["id"] for t in types if t["kind"] == "latent"]
    assert [t["name"] for t in types if t["kind"] == "latent"] == ["latent_1", "latent_2", "latent_3"]
    assert latent_ids == list(range(len(types) - 3, len(types)))
    assert set(latent.column("relation").to_pylist()) <= set(latent_ids)
    p = latent.column("probability").to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    assert set(latent.column("source").to_pylist()) <= {"cooccur", "knn", "both"}
    heads, tails = latent.column("head").to_numpy(), latent.column("tail").to_numpy()
    assert len(set(zip(heads, tails))) == latent.num_rows and (heads != tails).all()
    metrics = json.loads(Path("metrics/discover.json").read_text())
    assert {"reconstruction_accuracy", "relation_usage", "nmi_latent_vs_predefined", "share_items_gaining_latent_relation"} <= set(metrics)
    assert sum(metrics["relation_usage"].values()) == latent.num_rows
    assert Path("plots/discover.csv").read_text().startswith("epoch,")


def test_discover_needs_two_latent_types(ws):
    _, params = ws
    params["discover"]["latent_types"] = 1
    with pytest.raises(ConfigError, match="K >= 2"):
        discover_stage.run(params)


def test_embedding_store_must_cover_every_item(ws):
    from lrd.discover import text_matrix
    from lrd.embed.store import EmbeddingStore

    store = EmbeddingStore.open(next(Path("data/embeddings/tiny").iterdir()))
    with pytest.raises(MissingUpstreamError, match=r"lacks vectors for 5 of 35 items .*dvc repro embed"):
        text_matrix(store, 35)


def _train(params, name):
    train_stage.run(params, name)
    return json.loads(Path(f"metrics/{name}.json").read_text())


def test_models_train_and_write_outputs(ws):
    _, params = ws
    for name in ("sasrec", "rcf", "kda_lrd", "kda_static"):
        m = _train(params, name)
        assert set(m["test"]) == {"HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20"}
        assert 0 <= m["test"]["NDCG@5"] <= m["test"]["HR@5"] <= 1
        ranks = pq.read_table(f"models/{name}/ranks.parquet")
        assert ranks.num_rows == 80 and set(ranks.column("split").to_pylist()) == {"dev", "test"}
        assert Path(f"models/{name}/seed1.pt").exists()
    assert pq.read_table("models/kda_lrd/latent_joint.parquet").schema == pq.read_table("data/relations/tiny/latent.parquet").schema


def test_training_is_deterministic(ws):
    _, params = ws
    a = _train(params, "kda")
    b = _train(params, "kda")
    assert a["test"] == b["test"] and a["dev"] == b["dev"]


def test_seeds_give_mean_and_std(ws):
    _, params = ws
    params["train"]["seeds"] = [1, 2]
    m = _train(params, "rcf")
    per_seed = [s["test"]["NDCG@5"] for s in m["per_seed"]]
    assert m["test"]["NDCG@5"] == pytest.approx(np.mean(per_seed))
    assert m["test_std"]["NDCG@5"] == pytest.approx(np.std(per_seed))


def test_unknown_model_lists_the_valid_ones(ws):
    _, params = ws
    with pytest.raises(ConfigError, match="unknown model 'kdaa'.*sasrec, rcf, rcf_lrd, kda, kda_lrd, kda_static"):
        train_stage.run(params, "kdaa")


def test_lrd_model_starts_from_the_discover_checkpoint(ws):
    from lrd.config import DiscoverConfig, TrainConfig, dataset_config
    from lrd.discover import text_matrix
    from lrd.embed.store import EmbeddingStore
    from lrd.train.build import build_model, init_from_discover, relation_graph
    from lrd.train.data import DatasetTables

    _, params = ws
    params["train"]["init_from_discover"] = True
    cfg, dcfg = TrainConfig.from_params(params), DiscoverConfig.from_params(params)
    tables = DatasetTables.load(dataset_config(params).processed_dir)
    spec = cfg.spec("kda_lrd")
    graph = relation_graph(spec, cfg, dcfg, tables, Path("data/relations/tiny/latent.parquet"))
    text = text_matrix(EmbeddingStore.open(next(Path("data/embeddings/tiny").iterdir())), tables.n_items)
    model = build_model(spec, cfg, dcfg, tables, graph, text)
    init_from_discover(model, graph, cfg, dcfg)
    state = torch.load("models/discover/checkpoint.pt", weights_only=True)["state"]
    assert torch.equal(model.entities.weight, state["entities.weight"])
    assert torch.equal(model.lrd.extract.weight, state["lrd.extract.weight"])
    _train(params, "kda_lrd")  # and the stage trains from there


def test_stale_discover_checkpoint_is_refused(ws):
    _, params = ws
    params["discover"]["latent_types"] = 4  # discover ran with 3
    params["train"]["init_from_discover"] = True
    with pytest.raises(ConfigError, match="was made with other settings.*dvc repro discover"):
        train_stage.run(params, "kda_lrd")


def test_nan_loss_stops_with_the_epoch_and_keeps_the_best_checkpoint(ws, monkeypatch, tmp_path):
    from lrd.models.relational import RelationalRecommender

    _, params = ws
    params["train"]["max_epochs"] = 3
    params["train"]["patience"] = 3
    real = RelationalRecommender.losses
    calls = {"n": 0}

    def poisoned(self, batch):
        out = real(self, batch)
        calls["n"] += 1
        if calls["n"] > 8:  # 7 batches per epoch: fine in epoch 1, NaN in epoch 2
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(RelationalRecommender, "losses", poisoned)
    with pytest.raises(ModelError, match=r"became nan at epoch 2, step \d+; the best checkpoint \(epoch 1\) is kept at models/kda-seed1-before-failure.pt"):
        train_stage.run(params, "kda")
    state = torch.load("models/kda-seed1-before-failure.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_train_without_upstream_names_the_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = tiny_params(tmp_path)
    with pytest.raises(MissingUpstreamError, match=r"dvc repro ingest"):
        train_stage.run(params, "kda")


def test_full_ranking_is_never_better_than_the_sampled_rank(ws):
    _, params = ws
    params["train"]["full_ranking"] = True
    params["train"]["max_epochs"] = 1
    m = _train(params, "kda")
    ranks = pq.read_table("models/kda/ranks.parquet").to_pylist()
    sampled = {r["user"]: r["rank"] for r in ranks if r["split"] == "test"}
    full = {r["user"]: r["rank"] for r in ranks if r["split"] == "test_full"}
    assert len(full) == 40 and max(full.values()) <= 30
    assert all(full[u] >= sampled[u] for u in full)
    assert m["test_full_ranking"]["HR@20"] <= 1.0
