"""The matrix runner (`lrd matrix`) on the real DVC pipeline in a copy of the repo, tiny dataset:
cells at once give the files of cells one after the other, a stopped runner leaves every cell
resumable and nothing half-written, a failing cell does not stop the others, and every finished
cell is recorded in dvc.lock."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import pipeline_params, write_recbole
from tests.test_pipeline import REPO, _env, dvc

pytestmark = pytest.mark.e2e
CELLS = ["train@tiny-kda-1", "train@tiny-kda-2"]


def lrd(root: Path, *args: str, **kw):
    return subprocess.run([sys.executable, "-c", "from lrd.cli import main; main()", *args], cwd=root, env=_env(),
                          capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A project whose upstream stages have run; tests work on copies of it."""
    root = tmp_path_factory.mktemp("matrix")
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    for folder in ("lrd", "stages", "scripts"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    params = pipeline_params(write_recbole(tmp_path_factory.mktemp("source") / "tiny"))
    params["train"].update(models=["kda"], lrd_models=[], seeds=[1, 2], max_epochs=3, stopping="patience", patience=5)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert dvc(root, "init", "--no-scm", "-q").returncode == 0
    up = dvc(root, "repro", "ingest@tiny")
    assert up.returncode == 0, up.stderr[-2000:]
    return root


@pytest.fixture
def project(template, tmp_path) -> Path:
    root = tmp_path / "p"
    shutil.copytree(template, root, symlinks=True)
    return root


def results(root: Path) -> dict:
    """What a cell computed, without the timings and provenance."""
    out = {}
    for cell in (1, 2):
        folder = root / f"results/tiny/kda/{cell}"
        metrics = json.loads((folder / "metrics.json").read_text())
        curve = pq.read_table(folder / "ranks.parquet").to_pydict()
        rows = (folder / "curve.csv").read_text().splitlines()
        keep = [i for i, c in enumerate(rows[0].split(",")) if "seconds" not in c and c != "time"]
        out[cell] = (metrics["test"], metrics["dev"], metrics["epochs"], curve, [[r.split(",")[i] for i in keep] for r in rows])
    return out


def test_two_cells_at_once_match_one_after_the_other(project, tmp_path):
    before = lrd(project, "matrix", "status")
    assert before.returncode == 0 and all(f"{c}" in before.stdout for c in CELLS)
    assert "2 pending of 2 cells" in before.stdout and "left:" in before.stdout  # the cost, shown before a run
    together = lrd(project, "matrix", "run", "--jobs", "2")
    assert together.returncode == 0, together.stderr[-3000:]
    assert together.stderr.count("finished train@tiny-kda-") == 2
    status = dvc(project, "status", "--json", *CELLS)
    assert json.loads(status.stdout) == {}  # dvc.lock records both: nothing to do for DVC
    after = lrd(project, "matrix", "status")
    assert "2 done of 2 cells" in after.stdout
    assert "2 done of 2 cells" in lrd(project, "matrix", "status", "--no-dvc").stdout  # as on a machine without DVC
    sequential = tmp_path / "seq"
    shutil.copytree(project, sequential, symlinks=True)
    for folder in ("results", "models", "logs"):
        shutil.rmtree(sequential / folder)
    one = lrd(sequential, "matrix", "run", "--jobs", "1")
    assert one.returncode == 0, one.stderr[-3000:]
    assert results(project) == results(sequential)


def test_a_stopped_runner_leaves_every_cell_resumable(project, tmp_path):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"].update(max_epochs=200, patience=200)  # long enough to stop it mid-way
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    runner = subprocess.Popen([sys.executable, "-c", "from lrd.cli import main; main()", "matrix", "run", "--jobs", "2"], cwd=project,
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    states = [project / f"models/tiny/kda/{s}/state.pt" for s in (1, 2)]
    deadline = time.time() + 300
    while not all(p.exists() for p in states) and time.time() < deadline:
        time.sleep(0.5)
    runner.send_signal(signal.SIGTERM)
    _, err = runner.communicate(timeout=120)
    assert runner.returncode == 130, err[-2000:]
    assert "resumes from its last finished epoch" in err
    assert all(p.exists() for p in states)
    assert not list(project.rglob(".*.tmp-*")) and not (project / "results/tiny/kda/1/metrics.json").exists()
    status = lrd(project, "matrix", "status")
    assert "2 started of 2 cells" in status.stdout
    params["train"]["max_epochs"] = 3
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # max_epochs is part of the stage, not of the resume point: the run continues where it stopped
    again = lrd(project, "matrix", "run")
    assert again.returncode == 0, again.stderr[-3000:]
    logs = (project / "logs/matrix/train@tiny-kda-1.log").read_text()
    assert "resuming" in logs.lower()
    assert (project / "results/tiny/kda/2/metrics.json").exists()


def test_a_failing_cell_does_not_stop_the_others(project):
    (project / "results/tiny/kda").mkdir(parents=True)
    (project / "results/tiny/kda/2").write_text("a file where the cell's results folder goes")
    run = lrd(project, "matrix", "run", "--jobs", "1")
    assert run.returncode == 1
    assert "FAILED train@tiny-kda-2" in run.stderr and "finished train@tiny-kda-1" in run.stderr
    assert "1 cell(s) failed: train@tiny-kda-2" in run.stderr
    status = lrd(project, "matrix", "status")
    line = next(l for l in status.stdout.splitlines() if l.startswith("train@tiny-kda-2"))
    assert " failed " in line and "exit 1" in line
    assert json.loads(dvc(project, "status", "--json", "train@tiny-kda-1").stdout) == {}


def test_gpu_script_on_the_cpu_packs_cells_that_unpack_as_finished(project, tmp_path):
    """scripts/gpu_cells.py, as on a GPU machine (no DVC used), here with --device cpu; unpacked in
    a copy of the project, the cells count as finished and dvc.lock records them."""
    out = tmp_path / "out"
    script = [sys.executable, "scripts/gpu_cells.py"]
    run = subprocess.run([*script, "run", "--limit", "600", "--out", str(out), "--device", "cpu", "--jobs", "2"], cwd=project, env=_env(),
                         capture_output=True, text=True, timeout=700)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [r["state"] for r in summary] == ["finished", "finished"] and summary[0]["device"].startswith("cpu")
    here = tmp_path / "here"
    shutil.copytree(project, here, symlinks=True)
    shutil.rmtree(here / "results")
    shutil.rmtree(here / "models")
    unpack = subprocess.run([*script, "unpack", *map(str, sorted(out.glob("cells-*.tar.gz")))], cwd=here, env=_env(), capture_output=True,
                            text=True, timeout=300)
    assert unpack.returncode == 0, unpack.stdout[-3000:] + unpack.stderr[-3000:]
    assert "2 finished cell(s) unpacked" in unpack.stdout
    assert json.loads(dvc(here, "status", "--json", *CELLS).stdout) == {}
    assert results(here) == results(project)


def test_time_left_follows_the_stopping_rule():
    """A running cell's length: the mean of its model's finished cells, no shorter than the
    reference rule allows after its best epoch so far (last round: "2 min" for 17 epochs more)."""
    from lrd.matrix import Cell, CellState, StopBounds, estimate, status_table

    bounds = StopBounds("reference", min_epochs=20, patience=5, max_epochs=200)
    done = CellState(Cell("train", "d", "kda", 1), "done", epochs=30, seconds_per_epoch=10.0, best_epoch=9)
    # at epoch 30 with its best at 29: the rule needs 5 values from the best on, epoch 33 at least,
    # where the finished cell's 30 epochs would say 1 epoch more
    running = CellState(Cell("train", "d", "kda", 2), "running", epochs=30, seconds_per_epoch=10.0, best_epoch=29)
    young = CellState(Cell("train", "d", "kda", 3), "running", epochs=3, seconds_per_epoch=10.0, best_epoch=3)
    eta = estimate([done, running, young], 40, bounds)
    assert eta[running.cell][0] == pytest.approx(10.0 * 3)
    assert eta[young.cell][0] == pytest.approx(10.0 * (30 - 3))
    assert bounds.clamp(10, 12, 5) == 21  # never before epoch min_epochs + 1
    assert StopBounds("patience", patience=5).clamp(12, 12, 10) == 15
    # a filtered view still takes rates and lengths from the cells it leaves out
    alone = estimate([running], 40, bounds, pool=[done])
    assert alone[running.cell] == (pytest.approx(30.0), True)
    # one 2-hour cell does not become one hour at two cells at a time
    slow = CellState(Cell("train", "d", "kda_lrd", 1), "pending")
    table = status_table([slow], 2, 40, bounds, pool=[CellState(Cell("train", "d", "kda_lrd", 9), "done", epochs=180,
                                                                     seconds_per_epoch=40.0, best_epoch=160)])
    assert "about 2h00 at 2 cells" in table


def test_a_stale_cell_runs_again_at_its_models_current_rate():
    """Code that made cells stale may run at another speed: its done cells say which."""
    from lrd.matrix import Cell, CellState, plan_estimate, rerun_estimate, status_table

    old = CellState(Cell("train", "d", "kda", 1), "stale", epochs=50, seconds_per_epoch=15.0)
    alone = CellState(Cell("train", "d", "kda_lrd", 1), "stale", epochs=70, seconds_per_epoch=50.0)
    new = CellState(Cell("train", "d", "kda", 2), "done", epochs=40, seconds_per_epoch=10.0)
    rerun = rerun_estimate([old, alone, new])
    assert rerun == {old.cell: (pytest.approx(500.0), True), alone.cell: (pytest.approx(3500.0), True)}
    assert plan_estimate([old, alone, new], [old.cell], 40) == {old.cell: (pytest.approx(500.0), True)}
    assert "stale, to run again (`lrd matrix run --rerun-stale`): 1.1 CPU-hours" in status_table([old, alone, new], 2, 40)
