"""Training as 2 DDP ranks (gloo on CPU, started by torchrun) computes what one process computes,
writes its files from rank 0 only, resumes, and fails cleanly when a rank dies or hangs."""

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import yaml

from lrd.config.train import DiscoverConfig, TrainConfig
from lrd.data.tables import DatasetTables
from lrd.errors import ConfigError
from lrd.experiment import prepare
from lrd.models import build_model
from lrd.paths import Paths
from stages import embed as embed_stage
from stages import ingest as ingest_stage
from stages import train as train_stage
from stages import train_lrd as train_lrd_stage
from tests.conftest import tiny_params, write_recbole

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch without gloo")

P = Paths("tiny")
WORKER = Path(__file__).with_name("ddp_worker.py")
MODELS = ("kda", "kda_lrd")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The tiny dataset, ingested and embedded, and the training params: 2 epochs of batches of
    45 rows (22 + 23 per rank)."""
    root = tmp_path_factory.mktemp("ddp")
    params = tiny_params(write_recbole(root / "source"))
    params["train"].update(max_epochs=2, stopping="patience", patience=10, batch_size=45, ddp_timeout=20)
    cwd = Path.cwd()
    try:
        os.chdir(root)
        shutil.copytree(root / "source", P.raw)
        ingest_stage.run(params, "tiny")
        embed_stage.run(params, "tiny")
    finally:
        os.chdir(cwd)
    return root / "data", params


def workspace(dataset, name: str, **train) -> Path:
    """A folder with the dataset's processed data and vectors, and a params.yaml."""
    data, params = dataset
    folder = data.parent / name
    shutil.copytree(data, folder / "data")
    params = copy.deepcopy(params)
    params["train"].update(train)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder


def torchrun(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """tests/ddp_worker.py as 2 ranks (through the project's torchrun, lrd.train.launch): `args` are its seed, models and fault."""
    cmd = [sys.executable, "-m", "lrd.train.launch", "--standalone", "--nproc-per-node=2", str(WORKER), *args]
    return subprocess.run(cmd, check=False, cwd=folder, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def saved_epochs(folder: Path, name: str) -> int:
    """The epochs an unfinished run's resume point holds."""
    state = torch.load(folder / P.resume_state(name, 1), weights_only=True)
    return len(json.loads(state["curve"]))


def curve(folder: Path, name: str) -> list[dict]:
    """The per-epoch losses and dev metrics (curve.csv: 6 decimals, finer than the tolerance)."""
    import csv

    with open(folder / P.run_curve(name, 1)) as f:
        return [{k: float(v) for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def metrics(folder: Path, name: str) -> dict:
    return json.loads((folder / P.run_metrics(name, 1)).read_text())


@pytest.fixture(scope="module")
def one_process(dataset):
    """The reference: kda and kda_lrd trained in this process."""
    folder = workspace(dataset, "one")
    params = yaml.safe_load((folder / "params.yaml").read_text())
    cwd = Path.cwd()
    try:
        os.chdir(folder)
        for name in MODELS:
            (train_lrd_stage if params["models"][name].get("lrd") else train_stage).run(copy.deepcopy(params), "tiny", name, 1)
    finally:
        os.chdir(cwd)
    return folder


@pytest.fixture(scope="module")
def two_ranks(dataset):
    """2 ranks training kda with rank 1 exiting in epoch 2; then 2 ranks training kda again
    (resuming) and kda_lrd."""
    folder = workspace(dataset, "two")
    start = time.perf_counter()
    died = torchrun(folder, "1", "kda", "--die-in-epoch", "2")
    died_after = time.perf_counter() - start
    left = {"state_epochs": saved_epochs(folder, "kda"), "metrics": (folder / P.run_metrics("kda", 1)).exists()}
    resumed = torchrun(folder, "1", *MODELS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return folder, died, died_after, left


def test_two_ranks_compute_what_one_process_computes(one_process, two_ranks):
    folder = two_ranks[0]
    for name in MODELS:
        one, two = curve(one_process, name), curve(folder, name)
        assert [r.keys() for r in one] == [r.keys() for r in two] and len(one) == 2
        for a, b in zip(one, two):  # training losses and dev metrics, epoch by epoch
            assert all(abs(a[k] - b[k]) <= 1e-4 for k in a), (name, a, b)
        m1, m2 = metrics(one_process, name), metrics(folder, name)
        assert m2["dev"] == pytest.approx(m1["dev"], abs=1e-9) and m2["test"] == pytest.approx(m1["test"], abs=1e-9)
        assert "processes" not in m1 and m2["processes"] == 2


def test_only_rank_0_writes(two_ranks):
    folder = two_ranks[0]
    written = {Path(p).name for p in (folder / "renames-0.txt").read_text().split()}
    assert written == {"best.pt", "state.pt", "metrics.json", "ranks.parquet", "curve.csv", "relations.pt"}  # relations.pt: kda_lrd
    assert (folder / "renames-1.txt").read_text() == ""


def test_a_rank_that_dies_fails_the_run_and_the_last_epoch_resumes(two_ranks):
    folder, died, died_after, left = two_ranks
    # one line names the rank that exited, not torch's ChildFailedError dump
    assert died.returncode != 0 and "training failed: rank 1 exited with status 3" in died.stderr
    assert "ChildFailedError" not in died.stderr and "Root Cause" not in died.stderr, died.stderr[-2000:]
    assert died_after < 60  # not the 20 s timeout twice over: gloo sees the closed connection
    assert left == {"state_epochs": 1, "metrics": False}
    m = metrics(folder, "kda")
    assert m["resumed_after_epoch"] == 1 and m["epochs"] == 2


def test_a_rank_that_hangs_fails_the_run_within_the_timeout(dataset):
    folder = workspace(dataset, "hang", ddp_timeout=5)
    start = time.perf_counter()
    hung = torchrun(folder, "1", "kda", "--hang-in-epoch", "2")
    assert hung.returncode != 0 and time.perf_counter() - start < 60
    assert "rank 0 of 2 lost the other training processes" in hung.stderr and "within `train.ddp_timeout` = 5 s" in hung.stderr
    assert saved_epochs(folder, "kda") == 1 and not (folder / P.run_metrics("kda", 1)).exists()


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("name", ["kda_lrd", "sasrec"])
def test_the_shares_of_a_batch_add_up_to_its_loss_and_gradient(dataset, monkeypatch, name, world):
    """Batches of 179 rows: 2 of them, then one of 2 rows, which leaves a third rank without
    rows (it runs one at weight 0)."""
    data, params = dataset
    monkeypatch.chdir(data.parent)
    train, tables = TrainConfig.from_params(params), DatasetTables.load(P)
    text = np.random.default_rng(0).standard_normal((tables.n_items + 1, 8)).astype(np.float32)
    run = prepare(name, 1, tables, train, DiscoverConfig.from_params(params), P, text)
    torch.manual_seed(0)
    model = build_model(run.cfg, run.catalog)
    use_kg, params_ = run.catalog.graph is not None and run.catalog.graph.n_triples > 0, list(model.parameters())

    def loss_and_grads(batches):
        model.zero_grad()
        total = {}
        for batch in batches:
            losses = model.losses(batch)
            losses["loss"].backward()
            total = {k: total.get(k, 0.0) + float(v.detach()) for k, v in losses.items()}
        return total, [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params_]

    def epoch(part):
        return list(run.data.epoch(np.random.default_rng(5), 179, use_kg, run.cfg.lrd, part=part))

    whole = epoch((0, 1))
    shares = [epoch((r, world)) for r in range(world)]
    assert [len(b.users) for b in whole] == [179, 179, 2]
    for i, batch in enumerate(whole):
        loss, grads = loss_and_grads([batch])
        loss_sum, grads_sum = loss_and_grads([s[i] for s in shares])
        assert loss_sum == pytest.approx(loss, abs=1e-6)
        assert all(torch.allclose(a, b, atol=1e-7, rtol=1e-5) for a, b in zip(grads, grads_sum))


def test_ddp_without_torchrun_is_refused(dataset, monkeypatch):
    data, params = dataset
    monkeypatch.chdir(data.parent)
    params = copy.deepcopy(params)
    params["train"]["distributed"] = "ddp"
    with pytest.raises(ConfigError, match=r"not started by torchrun: run `stages/run train .*torchrun --nproc-per-node N -m stages.train"):
        train_stage.run(params, "tiny", "kda", 1)


def test_the_ddp_setting_starts_the_ranks_itself(dataset, one_process):
    """`train.distributed: ddp` in a plainly started stage (as stages/run, so DVC, starts it): the
    stage becomes torchrun with `train.processes` ranks, and trains as they do."""
    folder = workspace(dataset, "setting", distributed="ddp", processes=2)
    repo = str(Path(__file__).resolve().parents[1])
    run = subprocess.run([sys.executable, "-m", "stages.train", "tiny", "kda", "1"], cwd=folder, capture_output=True, text=True,
                         timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": repo})
    assert run.returncode == 0, run.stderr[-3000:]
    m, m1 = metrics(folder, "kda"), metrics(one_process, "kda")
    assert m["processes"] == 2 and m["test"] == pytest.approx(m1["test"], abs=1e-9)
