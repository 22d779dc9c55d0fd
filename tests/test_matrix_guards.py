"""The matrix runner's guards, on tiny generated files (no training, no DVC run): one runner per
workspace, a claimed cell never started twice, pid files of dead or unrelated processes seen as
such, `dvc status` failures loud, results of old params never recorded under new ones, archives
unpacked only whole and newer, stage names that cannot collide, and one line instead of a
traceback for a bad dvc.lock, params file or seed."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from lrd import matrix
from lrd.errors import ConfigError, LRDError
from lrd.runlock import Holder, claim, runner_lock
from tests.conftest import tiny_params, write_recbole

REPO = Path(__file__).resolve().parents[1]
CELL = matrix.Cell("train", "tiny", "kda", 1)


@pytest.fixture
def project(tmp_path) -> Path:
    """A workspace with the tiny params.yaml (models kda, kda_lrd, sasrec; seed 1) and nothing run."""
    root = tmp_path / "p"
    root.mkdir()
    params = tiny_params(write_recbole(tmp_path / "source"))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "logs/matrix").mkdir(parents=True)
    return root


def _sleeper(*argv_tail: str) -> subprocess.Popen:
    """A live process whose command line ends like a cell's stage command."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv_tail])


# --------------------------------------------------------------------------------------------
# one runner, one process per cell


def test_a_pid_file_of_an_unrelated_live_process_is_not_a_running_cell(project):
    pid_file = project / f"logs/matrix/{CELL.name}.pid"
    for text in ("1\n", f"{os.getpid()}\n", f"{os.getpid()} 12345\n", "999999999\n", "garbage\n"):
        pid_file.write_text(text)  # old format naming init or pytest, a wrong start time, a dead pid, junk
        assert matrix.running_in(project, CELL) is None, text
    # a runner of the old code wrote the pid alone: a live process of the cell's own command is adopted
    cell_process = _sleeper(*CELL.argv_tail)
    try:
        pid_file.write_text(f"{cell_process.pid}\n")
        assert matrix.running_in(project, CELL) == cell_process.pid
        pid_file.write_text(Holder.me(cell_process.pid).text())  # the new format: pid and start time
        assert matrix.running_in(project, CELL) == cell_process.pid
    finally:
        cell_process.kill()
        cell_process.wait()
    assert matrix.running_in(project, CELL) is None


def test_a_stale_pid_file_does_not_make_the_runner_wait(project):
    """Last round: a pid file naming process 1 made `lrd matrix run` wait forever."""
    (project / f"logs/matrix/{CELL.name}.pid").write_text("1\n")
    assert matrix.states(project, [CELL], use_dvc=False)[0].state == "pending"
    lines = []
    start = time.time()
    failed = matrix.run(project, [], 1, 1, [None], lines.append, record=False, poll=0.05, adopt=[CELL])
    assert failed == [] and time.time() - start < 5 and not any("waiting" in line for line in lines)


def test_one_runner_per_workspace(project):
    logs = project / "logs/matrix"
    with runner_lock(logs):
        with pytest.raises(LRDError, match=f"another runner holds .*runner.lock .*process {os.getpid()}"):
            with runner_lock(logs):
                pass
        other = subprocess.run([sys.executable, "-c", "from pathlib import Path; from lrd.runlock import runner_lock\n"
                                f"with runner_lock(Path({str(logs)!r})): print('got it')"], capture_output=True, text=True, cwd=REPO)
        assert other.returncode == 1 and "got it" not in other.stdout and "one runner per workspace" in other.stderr
    with runner_lock(logs):  # released when its holder ends
        pass


def test_a_second_lrd_matrix_run_stops_at_once(project, monkeypatch):
    """Last round: two runners started together both trained the same pending cell."""
    from click.testing import CliRunner

    from lrd.cli import main

    monkeypatch.chdir(project)
    (project / "dvc.yaml").write_text("stages: {}\n")
    with runner_lock(project / "logs/matrix"):
        result = CliRunner().invoke(main, ["matrix", "run", "--no-record"])
    assert result.exit_code == 1 and "another runner holds" in result.stderr and "Traceback" not in result.output
    assert not (project / "logs/matrix" / f"{CELL.name}.pid").exists()


def test_a_claimed_cell_is_never_started_by_another_process(project):
    pid_file = project / f"logs/matrix/{CELL.name}.pid"
    assert claim(pid_file, CELL.argv_tail) is None  # this process claims it
    assert claim(pid_file, CELL.argv_tail) == Holder.me()  # a second claim finds the holder
    # another process holding the cell: run() waits for it instead of starting the stage command
    # (which does not exist here: starting it would fail with FileNotFoundError)
    holder = _sleeper(*CELL.argv_tail)
    pid_file.write_text(f"{holder.pid}\n")
    lines = []
    try:
        subprocess.Popen([sys.executable, "-c", f"import os, time; time.sleep(0.5); os.kill({holder.pid}, 9)"])
        failed = matrix.run(project, [CELL], 1, 1, [None], lines.append, record=False, poll=0.05)
    finally:
        holder.kill()
        holder.wait()
    assert any(f"waiting for {CELL.name}, running in process {holder.pid}" in line for line in lines)
    assert not any(line.startswith("started") for line in lines)
    assert failed == [(CELL, 1)]  # it ended without results: failed, not trained a second time here


def test_a_started_cell_is_named_by_pid_and_start_time(project, monkeypatch):
    """run() claims the cell, starts its command, names that process in the pid file (pid and start
    time), and removes the file when the cell ends."""
    pid_file = project / f"logs/matrix/{CELL.name}.pid"
    seen = project / "seen"
    # the child records the pid file once it names the child (the runner writes it just after the start)
    script = (f"import os, pathlib, time\nf = pathlib.Path({str(pid_file)!r})\nfor _ in range(100):\n"
              f"    if f.read_text().split()[0] == str(os.getpid()): break\n    time.sleep(0.05)\n"
              f"pathlib.Path({str(seen)!r}).write_text(f.read_text())")
    monkeypatch.setattr(matrix.Cell, "command", property(lambda cell: [sys.executable, "-c", script, *cell.argv_tail]))
    pids = []
    failed = matrix.run(project, [CELL], 1, 1, [None], lambda line: None, record=False, poll=0.05,
                        on_start=lambda cell, pid: pids.append(pid))
    assert failed == [] and not pid_file.exists()
    recorded = Holder.parse(seen.read_text())
    assert recorded.pid == pids[0] and recorded.start is not None


def test_an_older_runner_in_the_workspace_is_refused(project):
    """A runner of the code before the lock takes none: a new one must not start beside it."""
    old = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "matrix", "run"], cwd=project)
    try:
        time.sleep(0.3)
        from lrd.runlock import older_runners

        assert old.pid in older_runners(project, margin=-3600)  # as if it had started an hour before this one
        assert old.pid not in older_runners(project)  # started together with this one: this code, about to find the lock
        assert older_runners(project.parent, margin=-3600) == []  # another workspace's runner is not this one's
    finally:
        old.kill()
        old.wait()


# --------------------------------------------------------------------------------------------
# what DVC says


def _fake_dvc(monkeypatch, returncode: int, stdout: str, stderr: str = "") -> None:
    def fake(*args, **kwargs):
        return subprocess.CompletedProcess(args[0], returncode, stdout, stderr)

    monkeypatch.setattr(matrix.subprocess, "run", fake)


@pytest.mark.parametrize("returncode, stdout, stderr", [
    (255, "", "ERROR: failed to parse 'params.yaml': found duplicate key"),
    (0, "", ""),
    (0, "not json", ""),
    (0, "[]", ""),
])
def test_status_fails_loudly_when_dvc_cannot_answer(monkeypatch, returncode, stdout, stderr):
    _fake_dvc(monkeypatch, returncode, stdout, stderr)
    with pytest.raises(LRDError, match=r"`dvc status` failed .*pass --no-dvc"):
        matrix.dvc_changed(Path("."), [CELL.name])


def test_a_dvc_lock_that_is_not_a_lock_file_is_one_line(project):
    for text in ("- a\n- b\n", "stages: [1, 2]\n", "stages:\n  x: [1]\n", "{unclosed\n"):
        (project / "dvc.lock").write_text(text)
        with pytest.raises(LRDError, match="dvc.lock .*restore it"):
            matrix.states(project, [CELL], use_dvc=False)


def test_params_that_are_not_a_params_file_are_one_line(project):
    """`--params /dev/zero` read the device until the memory ran out (MemoryError)."""
    (project / "big.yaml").write_text("a: 1\n" + "#" * (2 << 20))
    for bad in (str(project), str(project / "big.yaml")):
        with pytest.raises(ConfigError, match=f"{bad} "):
            matrix.load(project, Path(bad))
    # /dev/zero only in a process under a memory limit: a regression then fails fast instead of
    # filling the machine's memory
    limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # noqa: E731
    for code in ("from lrd.cli import main; main()", "from pathlib import Path; from lrd.matrix import load\n"
                 "try: load(Path('.'), Path('/dev/zero'))\nexcept Exception as exc: print(type(exc).__name__, exc)"):
        proc = subprocess.run([sys.executable, "-c", code, "params", "check", "--params", "/dev/zero"], capture_output=True, text=True,
                              cwd=REPO, preexec_fn=limit, timeout=120)
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out and "MemoryError" not in out and "/dev/zero is not a regular file" in out, out


# --------------------------------------------------------------------------------------------
# results of old params


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _finished(root: Path, params_in_lock: dict) -> None:
    """CELL's results, and a dvc.lock recording them with `params_in_lock`."""
    folder = root / "results/tiny/kda/1"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"model": "kda", "seed": 1, "test": {"NDCG@5": 0.2}}))
    (folder / "curve.csv").write_text("epoch,dev_NDCG@5\n1,0.1\n")
    (folder / "ranks.parquet").write_bytes(b"ranks")
    outs = [{"path": f"results/tiny/kda/1/{f}", "hash": "md5", "md5": _md5(folder / f), "size": 1} for f in ("metrics.json", "curve.csv",
                                                                                                              "ranks.parquet")]
    lock = {"schema": "2.0", "stages": {CELL.name: {"cmd": " ".join(CELL.command), "params": {"params.yaml": params_in_lock}, "outs": outs}}}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))


def test_old_results_are_never_recorded_under_new_params(project, monkeypatch):
    """Last round: a re-run after a params change, stopped at epoch 4, then `lrd matrix commit`
    recorded the OLD run's metrics.json under the NEW params."""
    # dvc.lock writes 1.0e-6 as the string "1e-06": equal, not a change
    _finished(project, {"models.kda": {"arch": "kda", "lr": 0.003}, "train.l2": "1e-06", "dim": 16})
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["l2"] = 1.0e-6
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setattr(matrix, "_dvc", lambda *a, **k: pytest.fail("dvc commit must not run"))
    assert matrix.old_results(project, CELL, matrix.read_lock(project)) == ['models.kda: {"arch": "kda", "lr": 0.003} -> '
                                                                               '{"arch": "kda", "lr": 0.001}']
    with pytest.raises(LRDError, match=rf"{CELL.name}: .*models.kda.*not recorded. `lrd matrix run --rerun-stale` re-runs it"):
        matrix.commit(project, CELL)
    # status: stale, naming the params; a stopped re-run (a resume point beside the old results) resumes
    monkeypatch.setattr(matrix, "dvc_changed", lambda root, names: {n: False for n in names})
    st = matrix.states(project, [CELL])[0]
    assert st.state == "stale" and "models.kda" in st.note and "--rerun-stale" in st.note and st.params_changed
    resume = CELL.paths(project).resume_state(CELL.model, CELL.seed)
    resume.parent.mkdir(parents=True)
    resume.write_bytes(b"a resume point")
    assert matrix.states(project, [CELL])[0].state == "started"  # `lrd matrix run` resumes it
    # a new run's results (they no longer hash to dvc.lock's) are recorded
    (project / "results/tiny/kda/1/metrics.json").write_text(json.dumps({"model": "kda", "seed": 1, "test": {"NDCG@5": 0.3}}))
    assert matrix.old_results(project, CELL, matrix.read_lock(project)) == []


def test_unchanged_params_commit_as_before(project, monkeypatch):
    _finished(project, {"models.kda": {"arch": "kda", "lr": 0.001}, "train.max_epochs": 2})
    called = []
    monkeypatch.setattr(matrix, "_dvc", lambda root, *args: called.append(args) or subprocess.CompletedProcess(args, 0, "", ""))
    matrix.commit(project, CELL)
    assert called == [("commit", "--force", CELL.name)]


# --------------------------------------------------------------------------------------------
# names, views, seeds


def test_model_names_with_a_hyphen_are_refused(tmp_path):
    """dataset `tiny` x model `x-kda` and dataset `tiny-x` x model `kda` were both train@tiny-x-kda-2019."""
    from lrd.config.check import check_params

    params = tiny_params(write_recbole(tmp_path / "raw"))
    params["models"]["x-kda"] = dict(params["models"]["kda"])
    params["train"]["models"] = ["kda", "x-kda"]
    with pytest.raises(ConfigError, match="model name 'x-kda' contains '-'.*rename it, e.g. 'x_kda'"):
        check_params(params)
    params["datasets"]["ml-100k"] = params["datasets"].pop("tiny")  # a dataset keeps its hyphen
    params["train"]["models"] = ["kda"]
    check_params(params)


def test_the_repository_params_still_pass_and_write_the_same_file(tmp_path, monkeypatch):
    from lrd.config.base import load_params
    from stages import params as params_stage

    monkeypatch.chdir(tmp_path)
    params_stage.run(load_params(REPO / "params.yaml"))
    assert (tmp_path / "data/params-checked").read_bytes() == (REPO / "data/params-checked").read_bytes()


def test_sql_ranks_view_reads_only_the_declared_cells(tmp_path, monkeypatch):
    from lrd.sql import open_views

    monkeypatch.chdir(tmp_path)
    params = tiny_params(write_recbole(tmp_path / "raw"))  # kda seed 1 is declared; seed 2 and model old are not
    for model, seed in (("kda", 1), ("kda", 2), ("old", 1)):
        folder = tmp_path / "results/tiny" / model / str(seed)
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"model": [model], "seed": [seed], "split": ["test"], "user": [1], "target": [2], "rank": [3]}),
                       folder / "ranks.parquet")
    rows = open_views(params).execute("SELECT model, seed FROM ranks").fetchall()
    assert rows == [("kda", 1)]


def test_a_bad_seed_is_one_line(tmp_path):
    for seed in ("-5", "x1", "99999999999999999999"):
        proc = subprocess.run([str(REPO / "stages/run"), "train", "tiny", "kda", seed], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and f"seed {seed}" in proc.stderr.replace("'", ""), proc.stderr


# --------------------------------------------------------------------------------------------
# scripts/gpu_cells.py unpack


@pytest.fixture
def gpu_project(project) -> Path:
    """`project` with its own copy of scripts/gpu_cells.py (which works on the folder it lies in)."""
    (project / "scripts").mkdir()
    shutil.copy(REPO / "scripts/gpu_cells.py", project / "scripts/gpu_cells.py")
    (project / "lrd").symlink_to(REPO / "lrd")
    return project


def _cell_files(root: Path, ranks: list[int], ndcg5: float | None = None, mtime: float | None = None) -> list[Path]:
    """A finished CELL in `root`: results consistent with `ranks` (unless ndcg5 says otherwise) and best.pt."""
    from lrd.evaluate import ranking_metrics

    folder, model = root / "results/tiny/kda/1", root / "models/tiny/kda/1"
    folder.mkdir(parents=True, exist_ok=True)
    model.mkdir(parents=True, exist_ok=True)
    test = ranking_metrics(ranks)
    if ndcg5 is not None:
        test["NDCG@5"] = ndcg5
    n = len(ranks)
    pq.write_table(pa.table({"model": ["kda"] * n, "seed": pa.array([1] * n, pa.int32()), "split": ["test"] * n,
                             "user": pa.array(range(n), pa.int32()), "target": pa.array([1] * n, pa.int32()),
                             "rank": pa.array(ranks, pa.int32())}), folder / "ranks.parquet")
    (folder / "metrics.json").write_text(json.dumps({"dataset": "tiny", "model": "kda", "seed": 1, "test": test}))
    (folder / "curve.csv").write_text("epoch,dev_NDCG@5\n1,0.1\n")
    (model / "best.pt").write_bytes(b"weights")
    files = [folder / "metrics.json", folder / "ranks.parquet", folder / "curve.csv", model / "best.pt"]
    for f in files:
        os.utime(f, (mtime or time.time(),) * 2)
    return files


def _archive(tmp_path: Path, source: Path, files: list[Path], name: str = "cells-01.tar.gz") -> Path:
    out = tmp_path / name
    with tarfile.open(out, "w:gz") as tar:
        for f in files:
            tar.add(f, arcname=str(f.relative_to(source)))
    return out


def _unpack(root: Path, *archives: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/gpu_cells.py", "unpack", "--no-record", *map(str, archives)], cwd=root,
                          capture_output=True, text=True, timeout=300)


def test_unpack_takes_a_whole_consistent_cell(gpu_project, tmp_path):
    gpu = tmp_path / "gpu"
    archive = _archive(tmp_path, gpu, _cell_files(gpu, [1, 2, 3, 7, 12]))
    proc = _unpack(gpu_project, archive)
    assert proc.returncode == 0 and "1 finished cell(s) unpacked" in proc.stdout, proc.stdout + proc.stderr
    assert (gpu_project / "results/tiny/kda/1/metrics.json").read_bytes() == (gpu / "results/tiny/kda/1/metrics.json").read_bytes()
    assert not list(gpu_project.glob(".unpack-tmp-*"))


def test_unpack_never_overwrites_a_finished_result(gpu_project, tmp_path):
    """Last round: an archive holding one cell's metrics.json (NDCG@5 0.5) replaced the finished
    local one (whose ranks give 0.2011) and was committed."""
    local = _cell_files(gpu_project, [1, 2, 9, 30], mtime=time.time() - 3600)
    before = {f: f.read_bytes() for f in local}
    gpu = tmp_path / "gpu"
    newer = _cell_files(gpu, [1, 1, 1, 1])
    cases = {
        "partial": ([newer[0]], "lacks ranks.parquet, curve.csv, best.pt"),
        "inconsistent": (_cell_files(tmp_path / "bad", [1, 2, 9, 30], ndcg5=0.5), "says test NDCG@5 = 0.5"),
    }
    for name, (files, why) in cases.items():
        proc = _unpack(gpu_project, _archive(tmp_path, files[0].parents[4], files, f"{name}.tar.gz"))
        assert proc.returncode == 0 and why in proc.stdout and "0 finished cell(s) unpacked" in proc.stdout, (name, proc.stdout + proc.stderr)
        assert {f: f.read_bytes() for f in local} == before, name
    # a finished result dvc.lock records is kept even against a newer whole archive
    outs = [{"path": str(f.relative_to(gpu_project)), "md5": _md5(f)} for f in local[:3]]
    (gpu_project / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {CELL.name: {"outs": outs}}}))
    proc = _unpack(gpu_project, _archive(tmp_path, gpu, newer, "newer.tar.gz"))
    assert "finished result recorded in dvc.lock is here" in proc.stdout and {f: f.read_bytes() for f in local} == before
    # an older archive does not replace an unrecorded finished result either
    (gpu_project / "dvc.lock").unlink()
    older = _cell_files(tmp_path / "older", [1, 1, 2, 2], mtime=time.time() - 7200)
    proc = _unpack(gpu_project, _archive(tmp_path, tmp_path / "older", older, "older.tar.gz"))
    assert "as new or newer" in proc.stdout and {f: f.read_bytes() for f in local} == before


def test_a_truncated_archive_is_one_line(gpu_project, tmp_path):
    gpu = tmp_path / "gpu"
    archive = _archive(tmp_path, gpu, _cell_files(gpu, list(range(1, 400))))
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    proc = _unpack(gpu_project, archive)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out and out.count("\n") == 1 and "truncated or damaged archive" in out, out
    assert not (gpu_project / "results").exists()


# --------------------------------------------------------------------------------------------
# the plan and its cost, asked about before a long run


def _run_cli(project, monkeypatch, *args: str, terminal: bool, answer: str = "", eta=None):
    """`lrd matrix run --no-record ARGS` in `project` with stdin a terminal or not; no cell starts
    (matrix.run records the call instead). `eta`: seconds per cell instead of the estimate."""
    from click.testing import CliRunner

    from lrd import cli

    monkeypatch.chdir(project)
    (project / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setattr(cli, "_stdin_is_terminal", lambda: terminal)
    started = []
    monkeypatch.setattr(matrix, "run", lambda root, todo, *a, **k: started.append([c.name for c in todo]) or [])
    if eta is not None:
        monkeypatch.setattr(matrix, "plan_estimate", lambda states, todo, *a, **k: {c: (eta, True) for c in todo})
    result = CliRunner().invoke(cli.main, ["matrix", "run", "--no-record", *args], input=answer)
    return result, started


def test_a_long_plan_asks_in_a_terminal_and_a_no_starts_nothing(project, monkeypatch):
    result, started = _run_cli(project, monkeypatch, "--jobs", "2", terminal=True, answer="n\n", eta=3600.0)
    assert "plan: run 3 cell(s) (train@tiny-sasrec-1" in result.stdout
    assert "cost: 3.0 CPU-hours measured at the cells' own rates; about 1h30 at 2 cells at a time" in result.stdout
    assert "start it? [y/N]" in result.stderr and "nothing started" in result.stderr
    assert result.exit_code == 1 and started == []


def test_a_yes_starts_the_plan(project, monkeypatch):
    result, started = _run_cli(project, monkeypatch, terminal=True, answer="y\n", eta=3600.0)
    assert "start it?" in result.stderr and result.exit_code == 0 and len(started[0]) == 3


def test_unknown_cost_asks_too(project, monkeypatch):
    """A fresh clone: no cell has a measured rate, so the cost is unknown and the runner asks."""
    result, started = _run_cli(project, monkeypatch, terminal=True, answer="n\n")
    assert "3 cells with no measured rate yet" in result.stdout and "start it?" in result.stderr and started == []


@pytest.mark.parametrize("args, terminal, eta", [(("--yes",), True, 3600.0), ((), False, 3600.0), ((), True, 60.0)])
def test_no_question_for_yes_scripts_or_a_short_plan(project, monkeypatch, args, terminal, eta):
    result, started = _run_cli(project, monkeypatch, *args, terminal=terminal, eta=eta)
    assert "plan: run 3 cell(s)" in result.stdout and "start it?" not in result.stderr
    assert result.exit_code == 0 and len(started) == 1


def test_the_cost_of_some_cells():
    a, b, c = (matrix.Cell("train", "tiny", m, 1) for m in ("a", "b", "c"))
    eta = {a: (3600.0, True), b: (1800.0, False), c: (None, False)}
    cost = matrix.cost(eta, jobs=2)
    assert (cost.cpu_seconds, cost.wall_seconds, cost.unknown, cost.guessed) == (5400.0, 3600.0, 1, True)  # never below the longest cell
    assert matrix.cost(eta, jobs=2, cells=[b]).wall_seconds == 1800.0


def test_pull_advice_only_where_a_remote_is_configured(tmp_path):
    """Issue: `lrd matrix status` advised `dvc pull` on a clone with no remote ("No remote provided")."""
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc/config").write_text("[core]\n    analytics = false\n")
    assert not matrix.has_remote(tmp_path)
    (tmp_path / ".dvc/config.local").write_text("[core]\n    remote = shared\n['remote \"shared\"']\n    url = /mnt/shared\n")
    assert matrix.has_remote(tmp_path)


def test_a_cell_whose_first_epoch_misses_the_deadline_is_not_started(tmp_path):
    """Issue 26: the runner must not start a cell that cannot reach a resume point before the deadline it is given."""
    said = []
    failed = matrix.run(tmp_path, [CELL], 1, 1, [None], said.append, record=False, poll=0.01,
                        deadline=time.time() + 60, epoch_seconds={CELL: 600.0})
    assert failed == [] and "not starting" in said[0] and "no resume point" in said[0]
    assert not (tmp_path / "logs/matrix" / f"{CELL.name}.pid").exists()  # never claimed, never started
    assert matrix.fits_before(time.time() + 3600, 600.0) and matrix.fits_before(None, 1e9) and matrix.fits_before(time.time(), None)


def test_epoch_rates_fall_back_from_the_cell_to_its_model_to_its_dataset():
    a, b, c = (matrix.Cell("train", "tiny", m, 1) for m in ("kda", "kda_lrd", "sasrec"))
    own, twin, other = (matrix.CellState(x, "pending") for x in (a, matrix.Cell("train", "tiny", "kda", 2), c))
    own.seconds_per_epoch, twin.seconds_per_epoch = 10.0, 30.0
    rates = matrix.epoch_rates([own, twin, other, matrix.CellState(b, "pending")])
    assert rates[a] == 10.0 and rates[twin.cell] == 30.0 and rates[c] == 20.0 and rates[b] == 20.0


def test_recording_a_cell_clears_its_failure_note(tmp_path, monkeypatch):
    """A cell whose runner's `dvc commit` failed, then recorded by `lrd matrix commit`, showed as failed."""
    failed = matrix.logs_dir(tmp_path) / f"{CELL.name}.failed"
    failed.parent.mkdir(parents=True)
    failed.write_text("`dvc commit` failed\n")
    monkeypatch.setattr(matrix, "old_results", lambda root, cell, lock: [])
    monkeypatch.setattr(matrix, "read_lock", lambda root: {})
    monkeypatch.setattr(matrix, "_dvc", lambda root, *args: subprocess.CompletedProcess(args, 0, "", ""))
    matrix.commit(tmp_path, CELL)
    assert not failed.exists()
