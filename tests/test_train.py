"""discover and training runs on a tiny dataset, in-process (the DVC end-to-end test is separate)."""

import copy
import json
import shutil
import time

import pyarrow.parquet as pq
import pytest
import torch

from lrd import experiment
from lrd.errors import ConfigError, DataError, MissingUpstreamError, ModelError
from lrd.paths import Paths
from stages import compare as compare_stage
from stages import discover as discover_stage
from stages import train as train_stage
from stages import train_lrd as train_lrd_stage
from tests.conftest import tiny_params, upstream_workspace

P = Paths("tiny")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder where ingest, embed and discover have run on the tiny dataset."""
    return upstream_workspace(tmp_path_factory, "ws")


@pytest.fixture
def ws(workspace, monkeypatch):
    root, params = workspace
    monkeypatch.chdir(root)
    return root, copy.deepcopy(params)


def test_discover_outputs(ws):
    latent = pq.read_table(P.latent)
    types = pq.read_table(P.relation_types).to_pylist()
    latent_ids = [t["id"] for t in types if t["kind"] == "latent"]
    assert [t["name"] for t in types if t["kind"] == "latent"] == ["latent_1", "latent_2", "latent_3"]
    assert latent_ids == list(range(len(types) - 3, len(types)))
    assert set(latent.column("relation").to_pylist()) <= set(latent_ids)
    p = latent.column("probability").to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    assert set(latent.column("source").to_pylist()) <= {"cooccur", "knn", "both"}
    heads, tails = latent.column("head").to_numpy(), latent.column("tail").to_numpy()
    assert len(set(zip(heads, tails))) == latent.num_rows and (heads != tails).all()
    metrics = json.loads(P.discover_metrics.read_text())
    assert {"reconstruction_accuracy", "relation_usage", "nmi_latent_vs_predefined", "share_items_gaining_latent_relation"} <= set(metrics)
    assert sum(metrics["relation_usage"].values()) == latent.num_rows
    assert P.discover_curve.read_text().startswith("epoch,")
    readout = metrics["readout"]
    assert [t["name"] for t in readout["types"]] == ["latent_1", "latent_2", "latent_3"]
    assert sum(t["pairs"] for t in readout["types"]) == latent.num_rows
    assert sum(t["confident"] for t in readout["types"]) == int((p >= 0.5).sum()) == readout["confident"]
    assert readout["attributes_shown"] == ["genres", "year"] and "known" not in readout  # no known relations ship for "tiny"
    for t in readout["types"]:
        assert sum(t["sources"].values()) == t["confident"]
        if t["confident"]:
            assert set(t["attributes"]) >= {"genres", "year", "genres=Action"} and t["top_pairs"]


def test_discover_candidate_and_training_choices(tmp_path_factory):
    """cooccur_min_count / cooccur_min_pmi keep fewer co-occurring candidates; knn_attributes finds
    neighbours that share attributes more often than the text alone; train_min_pmi trains;
    predefined_types: false leaves the predefined types out of discover's model."""
    import numpy as np

    from lrd.data.tables import DatasetTables
    from lrd.discover.coherence import ItemAttributes

    base_root, _ = upstream_workspace(tmp_path_factory, "ws_previous", cooccur_min_count=1, cooccur_min_pmi=None, train_min_pmi=None,
                                      knn_attributes=0.0, predefined_types=True)  # the previous way, each choice off
    root, _ = upstream_workspace(tmp_path_factory, "ws_choices", cooccur_min_count=2, cooccur_min_pmi=0.0, train_min_pmi=0.0,
                                 knn_attributes=1.0, predefined_types=False)
    before, after = (json.loads((r / P.discover_metrics).read_text()) for r in (base_root, root))
    assert 0 < after["pairs_cooccur"] < before["pairs_cooccur"]
    meta = {r: torch.load(r / P.discover_checkpoint, weights_only=False)["meta"]["relations"] for r in (base_root, root)}
    assert meta[root] == ["any", "latent_1", "latent_2", "latent_3"] and "genres=Action" in meta[base_root]  # predefined_types
    tables = DatasetTables.load(Paths("tiny", root))
    attrs = ItemAttributes.from_tables(tables.relation_types, tables.relations, tables.n_items)

    def genre_share(r):
        latent = pq.read_table(r / P.latent)
        knn = np.asarray(latent.column("source").to_pylist()) != "cooccur"
        heads, tails = (latent.column(c).to_numpy()[knn].astype(np.int64) for c in ("head", "tail"))
        return attrs.shared(heads, tails, ("genres",))["genres"].mean()

    assert genre_share(root) > genre_share(base_root) and genre_share(root) > 0.9


def test_discover_needs_two_latent_types(ws):
    _, params = ws
    params["discover"]["latent_types"] = 1
    with pytest.raises(ConfigError, match="`discover.latent_types` is 1; it must be >= 2"):
        discover_stage.run(params, "tiny")


def test_embedding_store_must_cover_every_item(ws):
    from lrd.embed.store import EmbeddingStore

    store = EmbeddingStore.open(next(P.embeddings.iterdir()))
    with pytest.raises(MissingUpstreamError, match=r"lacks vectors for 5 of 35 items .*dvc repro embed"):
        store.matrix(35)


def _train(params, name, seed=1):
    stage = train_lrd_stage if params["models"][name].get("lrd") else train_stage
    return stage.run(params, "tiny", name, seed)


def test_models_train_and_write_outputs(ws):
    _, params = ws
    for name in ("sasrec", "rcf", "kda_lrd", "kda_static"):
        m = _train(params, name)
        assert set(m["test"]) == {"HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20"}
        assert 0 <= m["test"]["NDCG@5"] <= m["test"]["HR@5"] <= 1
        assert json.loads(P.run_metrics(name, 1).read_text()) == m
        assert m["git_commit"] and m["device"].startswith("cpu") and m["seed"] == 1
        # what it ran with, to check a result against params.yaml later
        assert m["settings"]["model"]["name"] == name and m["settings"]["train"]["lr"] == params["models"][name]["lr"]
        assert m["settings"]["model"]["lrd"] == bool(params["models"][name].get("lrd"))
        ranks = pq.read_table(P.run_ranks(name, 1))
        assert ranks.num_rows == 80 and set(ranks.column("split").to_pylist()) == {"dev", "test"}
        assert P.best_checkpoint(name, 1).exists()
        assert P.run_relations(name, 1).exists() == (name == "kda_lrd")  # what compare reads of an +LRD run
        assert not P.resume_state(name, 1).exists()  # a finished run keeps no resume point
        assert P.run_curve(name, 1).read_text().startswith("epoch,")


def test_training_is_deterministic(ws):
    _, params = ws
    a = _train(params, "kda", seed=3)
    b = _train(params, "kda", seed=3)  # a finished run left no resume point: this one trains afresh
    assert a["test"] == b["test"] and a["dev"] == b["dev"] and b["resumed_after_epoch"] == 0


def test_a_killed_run_resumes_and_ends_bit_identical(ws, monkeypatch):
    """Kill a run after epoch 2 (an exception from the epoch hook), re-run it: it resumes from
    epoch 2 and ends with the same weights and metrics as an uninterrupted run."""
    from lrd.train import loop

    _, params = ws
    params["train"].update(max_epochs=4, stopping="patience", patience=10)
    whole = _train(params, "kda_lrd", seed=5)
    weights = torch.load(P.best_checkpoint("kda_lrd", 5), weights_only=True)
    shutil.rmtree(P.run_model("kda_lrd", 5))
    shutil.rmtree(P.run_results("kda_lrd", 5))

    real_fit = loop.fit

    def killed_after_two(model, opt, lp, state):
        saving = lp.on_epoch

        def save_then_die(s):
            saving(s)
            if s.epoch == 2:
                raise KeyboardInterrupt

        lp.on_epoch = save_then_die
        return real_fit(model, opt, lp, state)

    monkeypatch.setattr("lrd.experiment.fit", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        _train(params, "kda_lrd", seed=5)
    assert not P.run_metrics("kda_lrd", 5).exists()  # nothing reported for an unfinished run
    monkeypatch.setattr("lrd.experiment.fit", real_fit)
    real_ranks = experiment.candidate_ranks

    def slow_ranks(*args, **kwargs):  # ranking of measurable length (tiny data ranks in milliseconds)
        time.sleep(0.05)
        return real_ranks(*args, **kwargs)

    monkeypatch.setattr("lrd.experiment.candidate_ranks", slow_ranks)
    resumed = _train(params, "kda_lrd", seed=5)
    assert resumed["resumed_after_epoch"] == 2 and resumed["epochs"] == 4
    assert resumed["test"] == whole["test"] and resumed["dev"] == whole["dev"]
    # one meaning of "seconds per epoch" (training + ranking dev), its two parts beside it
    assert resumed["ranking_seconds_per_epoch"] >= 0.04  # 2 epochs' dev and the final dev + test, 0.05 s each, over 4 epochs
    assert resumed["seconds_per_epoch"] == pytest.approx(resumed["train_seconds_per_epoch"] + resumed["ranking_seconds_per_epoch"], abs=0.011)
    again = torch.load(P.best_checkpoint("kda_lrd", 5), weights_only=True)
    assert all(torch.equal(weights[k], again[k]) for k in weights)


def _interrupted(params, name, seed, monkeypatch):
    """Train `name` until its first resume point is saved, then stop as a killed run would."""
    from lrd.train import loop

    real_fit = loop.fit

    def killed_after_one(model, opt, lp, state):
        saving = lp.on_epoch

        def save_then_die(s):
            saving(s)
            raise KeyboardInterrupt

        lp.on_epoch = save_then_die
        return real_fit(model, opt, lp, state)

    monkeypatch.setattr("lrd.experiment.fit", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        _train(params, name, seed)
    monkeypatch.setattr("lrd.experiment.fit", real_fit)
    assert P.resume_state(name, seed).exists()


def test_a_resume_point_from_other_settings_or_a_corrupt_one_is_not_used(ws, caplog, monkeypatch):
    _, params = ws
    _interrupted(params, "kda", 6, monkeypatch)
    params["models"]["kda"]["lr"] = 5.0e-3
    m = _train(params, "kda", seed=6)
    assert m["resumed_after_epoch"] == 0 and "was saved by another run (train" in caplog.text
    P.resume_state("kda", 6).parent.mkdir(parents=True, exist_ok=True)
    P.resume_state("kda", 6).write_bytes(b"not a checkpoint")
    m = _train(params, "kda", seed=6)
    assert m["resumed_after_epoch"] == 0 and "cannot be read" in caplog.text and "starting the run over" in caplog.text


def test_unknown_model_lists_the_valid_ones(ws):
    _, params = ws
    with pytest.raises(ConfigError, match="unknown model 'kdaa'.*sasrec, rcf, rcf_lrd, kda, kda_lrd, kda_static"):
        train_stage.run(params, "tiny", "kdaa", 1)


def test_lrd_model_in_the_wrong_list_is_refused(ws):
    _, params = ws
    params["train"].update(models=["kda", "kda_lrd"], lrd_models=[])
    with pytest.raises(ConfigError, match=r"`train.models` lists 'kda_lrd', which is not a base model.*train.lrd_models"):
        train_stage.run(params, "tiny", "kda", 1)


def test_nan_loss_stops_with_the_epoch_and_keeps_the_best_weights(ws, monkeypatch):
    from lrd.models.relational import RelationalRecommender

    _, params = ws
    params["train"].update(max_epochs=3, patience=3)
    real = RelationalRecommender.losses
    calls = {"n": 0}

    def poisoned(self, batch):
        out = real(self, batch)
        calls["n"] += 1
        if calls["n"] > 8:  # 7 batches per epoch: fine in epoch 1, NaN in epoch 2
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(RelationalRecommender, "losses", poisoned)
    with pytest.raises(ModelError, match=r"became nan at epoch 2, step \d+; the best weights are those of epoch 1\..* in models/tiny/kda/9/best.pt"):
        _train(params, "kda", seed=9)
    state = torch.load(P.best_checkpoint("kda", 9), weights_only=True)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_train_without_upstream_names_the_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = tiny_params(tmp_path)
    with pytest.raises(MissingUpstreamError, match=r"dvc repro ingest"):
        train_stage.run(params, "tiny", "kda", 1)


def test_full_ranking_is_never_better_than_the_sampled_rank(ws):
    _, params = ws
    params["train"].update(full_ranking=True, max_epochs=1)
    m = _train(params, "kda", seed=7)
    ranks = pq.read_table(P.run_ranks("kda", 7)).to_pylist()
    sampled = {r["user"]: r["rank"] for r in ranks if r["split"] == "test"}
    full = {r["user"]: r["rank"] for r in ranks if r["split"] == "test_full"}
    assert len(full) == 40 and max(full.values()) <= 30
    assert all(full[u] >= sampled[u] for u in full)
    assert m["test_full_ranking"]["HR@20"] <= 1.0


def test_compare_reports_seeds_lifts_and_the_joint_relations(ws):
    _, params = ws
    params["train"]["seeds"] = [11, 12, 13]
    for seed in (11, 12, 13):
        for name in ("kda", "kda_lrd"):
            _train(params, name, seed)
    params["models"]["sasrec_once"] = params["models"]["sasrec"]  # a model no other test trains: one seed, no spread shown
    params["train"]["models"] = params["train"]["models"] + ["sasrec_once"]
    _train(params, "sasrec_once", 11)
    compare_stage.run(params, "tiny")
    table = (P.reports / "results.md").read_text()
    assert "| kda_lrd | kda | " in table and "[95% CI]" in table and "p (users)" in table
    row = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert "±" in row["kda"] and "±" not in row["sasrec_once"]
    assert pq.read_table(P.latent_joint).schema == pq.read_table(P.latent).schema
    rows = {r.split(",")[0]: r.split(",") for r in (P.reports / "results.csv").read_text().splitlines()}
    assert int(rows["kda"][2]) >= 3
    relations = (P.reports / "relations.md").read_text()
    assert "## discover (latent.parquet)" in relations and "## the best +LRD run's relabelled pairs (latent_joint.parquet)" in relations
    # the readout's summary of both tables (the tiny data has no pair strong enough for the per-type table)
    assert relations.count("labelled pairs, ") == 2 and "latent types carry confident pairs" in relations
    assert (P.reports / "relations.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_without_the_weights_still_makes_the_report(ws, caplog):
    """Issue: a fresh clone could not re-make the Office report because compare relabelled discover's
    pairs with the best +LRD run's weights, which only DVC's cache holds; the cells now write the
    part it reads into results/ (git)."""
    _, params = ws
    params["train"]["seeds"] = [31]
    for name in ("kda", "kda_lrd"):
        _train(params, name, 31)
    away = P.root / "models-away"
    (P.root / "models").rename(away)  # a fresh clone: results/ from git, no models/
    try:
        compare_stage.run(params, "tiny")
    finally:
        away.rename(P.root / "models")
    assert "| kda_lrd | 1 |" in (P.reports / "results.md").read_text()
    assert pq.read_table(P.latent_joint).num_rows > 0  # relabelled from the cell's results/.../relations.pt
    assert "| kda_lrd | 31 |" in (P.reports / "ablations.md").read_text()  # the joint readout too
    P.run_relations("kda_lrd", 31).unlink()  # results of a run from before the cells wrote it
    caplog.set_level("WARNING")
    compare_stage.run(params, "tiny")
    assert pq.read_table(P.latent_joint).num_rows == 0
    assert "re-run the cell" in caplog.text


def test_training_leaves_denormals_as_it_found_them(ws):
    """Runs flush denormals to zero (lrd.train.device.denormals_flushed), a setting of the whole
    process: it must not outlive the run (hypothesis, for one, refuses to work without them)."""
    _, params = ws
    _train(params, "kda", 41)
    assert torch.tensor([1e-39]).mul(1.0).item() != 0.0


def test_reference_rule_needs_a_window_of_values():
    """min_epochs 0 must not stop after one epoch: "the last 5 values did not rise" needs 5 values."""
    from lrd.train.stopping import ReferenceRule

    rule = ReferenceRule(min_epochs=0, window=5)
    stops = []
    for value in (0.1, 0.2, 0.3, 0.4):
        rule.update(value)
        stops.append(rule.should_stop())
    assert stops == [False, False, False, False]
    assert rule.last_epoch() == 4 + 0 + 1  # the first best epoch + min_epochs + 1
    rule.update(0.4)  # a tie: the best (first reached at epoch 4) is now min_epochs + 1 back
    assert rule.should_stop()


def test_full_disk_while_saving_weights_is_a_disk_full_error(tmp_path, monkeypatch):
    import errno

    from lrd.train import checkpoint

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.Path, "write_bytes", full)
    with pytest.raises(OSError) as exc:
        checkpoint.save_file({"w": torch.zeros(3)}, tmp_path / "best.pt")
    assert exc.value.errno == errno.ENOSPC
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_ablation_table_measures_each_variant_against_its_base(ws):
    _, params = ws
    params["models"].update(
        kda_paper={"arch": "kda", "lr": 1.0e-3, "kernel_init": "random"},
        kda_lrd_paper={"arch": "kda", "lr": 1.0e-3, "kernel_init": "random", "lrd": True},
        kda_lrd_random={"arch": "kda", "lr": 1.0e-3, "lrd": True, "vectors": "random"},
        kda_lrd_k2={"arch": "kda", "lr": 1.0e-3, "lrd": True, "latent_types": 2},
    )
    params["train"].update(models=["kda", "kda_paper"], lrd_models=["kda_lrd", "kda_lrd_paper"],
                           ablation_models=["kda_lrd_random", "kda_lrd_k2"], seeds=[21, 22], ablation_seeds=[21, 22])
    for seed in (21, 22):
        for name in ("kda", "kda_paper", "kda_lrd_paper", "kda_lrd_random"):
            _train(params, name, seed)
    compare_stage.run(params, "tiny")
    table, joint = (P.reports / "ablations.md").read_text().split("## The joint model's relations")
    row = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table.splitlines() if line.startswith("| kda")}
    # every +LRD run's extractor read out: where q goes, how many latent types keep pairs
    runs = {tuple(line.split(" | ")[:2]): line.split(" | ") for line in joint.splitlines() if line.startswith("| kda")}
    assert set(runs) == {(f"| {m}", str(s)) for m in ("kda_lrd_paper", "kda_lrd_random") for s in (21, 22)}
    for cells in runs.values():
        k, latent_q, kept = int(cells[2]), float(cells[3]), int(cells[4])
        assert 0 <= latent_q <= 1 and 0 <= kept <= k == params["discover"]["latent_types"]
        assert sum(float(c) for c in cells[6:-1] + [cells[-1].strip(" |")]) + latent_q == pytest.approx(1, abs=0.01)
    assert row["kda_lrd_paper"][1:4] == ["random temporal kernel", "kda_paper", "2"]
    assert row["kda_lrd_random"][1:4] == ["random item vectors", "kda", "2"]
    assert "%" in row["kda_lrd_random"][5] and "[" in row["kda_lrd_random"][5]
    not_run = next(line for line in table.splitlines() if line.startswith("Not run yet:"))
    assert "kda_lrd_k2" not in row and "kda_lrd_k2" in not_run  # (kda_lrd too: not trained with seeds 21-22)
    # the main table lists the paper's setting with its own base, not the ablations
    results = (P.reports / "results.md").read_text()
    assert "| kda_lrd_paper | kda_paper | 2 |" in results and "kda_lrd_random" not in results


def test_compare_refuses_results_of_other_settings(ws):
    """Issue: a result computed under other params (lr 0.001, params now 0.003) was averaged in as
    if it were the new setting's; metrics.json records the settings and compare checks them."""
    _, params = ws
    params["train"].update(seeds=[41], models=["kda"], lrd_models=[], ablation_models=[])
    _train(params, "kda", 41)
    compare_stage.run(params, "tiny")  # the same settings: accepted
    params["models"]["kda"]["lr"] = 0.003
    params["train"]["l2"] = 1.0e-4
    with pytest.raises(DataError, match=r"kda/41/metrics.json was computed with other settings than params.yaml's \(lr: 0.001 -> 0.003; "
                                        r"l2: 1e-06 -> 0.0001\): re-run the cell \(`lrd matrix run --rerun-stale"):
        compare_stage.run(params, "tiny")
