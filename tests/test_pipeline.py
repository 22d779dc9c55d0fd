"""End to end: the real DVC pipeline (dvc repro) on a tiny dataset in a copy of the repo, and
what re-runs when one thing changes (the stale set: changed stages and everything after them)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import pipeline_params, write_recbole

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def dvc(root: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=_env(), capture_output=True, text=True, timeout=900, **kw)


def _env() -> dict:
    env = {**os.environ, "VIRTUAL_ENV": sys.prefix, "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    for folder in ("lrd", "stages"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    params = pipeline_params(write_recbole(tmp_path_factory.mktemp("source") / "tiny"))
    params["train"]["seeds"] = [1, 2]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert dvc(root, "init", "--no-scm", "-q").returncode == 0
    assert dvc(root, "config", "core.analytics", "false").returncode == 0
    run = dvc(root, "repro")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return root


def test_dvc_repro_end_to_end(project):
    for path in ("data/processed/tiny/interactions.parquet", "data/embeddings/tiny/all-minilm-l6-v2/index.faiss",
                 "data/embeddings/tiny.identity.json", "results/tiny/kda_lrd/1/relations.pt",
                 "data/relations/tiny/latent.parquet", "data/relations/tiny/latent_joint.parquet", "metrics/tiny/discover.json",
                 "results/tiny/kda_lrd/2/metrics.json", "results/tiny/kda/1/ranks.parquet", "models/tiny/kda/1/best.pt",
                 "reports/tiny/results.md", "reports/tiny/results.csv", "reports/tiny/results.png", "reports/results.md"):
        assert (project / path).exists(), path
    table = (project / "reports/tiny/results.md").read_text()
    assert "| kda_lrd | 2 |" in table and "| kda_lrd | kda | 2 |" in table
    again = dvc(project, "repro")
    assert again.returncode == 0 and "Running stage" not in again.stdout  # nothing to do the second time
    shown = dvc(project, "metrics", "show")
    assert shown.returncode == 0 and "kda_lrd.NDCG@5" in shown.stdout and "kda_lrd.lift_NDCG@5" in shown.stdout
    assert "git_commit" not in shown.stdout and "failed to load" not in shown.stdout + shown.stderr  # numbers only
    for chart in ("curves", "lifts", "results", "discover"):
        assert (project / f"reports/tiny/{chart}.png").stat().st_size > 10_000


def test_a_clone_that_pulls_from_a_remote_has_nothing_to_rerun(project, tmp_path):
    """`dvc push` to a remote (here a local folder), then a fresh copy with only what git tracks
    (code, params, dvc.lock, results/ metrics/ plots/ reports/) and `dvc pull`: nothing reruns."""
    remote = tmp_path / "remote"
    assert dvc(project, "remote", "add", "-d", "--local", "shared", str(remote)).returncode == 0
    push = dvc(project, "push")
    assert push.returncode == 0, push.stderr[-2000:]
    clone = tmp_path / "clone"
    for name in ("dvc.yaml", "dvc.lock", "params.yaml", ".dvcignore"):
        shutil.copy(project / name, clone / name) if clone.exists() else (clone.mkdir(), shutil.copy(project / name, clone / name))
    for folder in ("lrd", "stages", "results", "metrics", "plots", "reports"):
        shutil.copytree(project / folder, clone / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (clone / "data").mkdir()
    shutil.copy(project / "data/params-checked", clone / "data/params-checked")  # tracked in git (cache: false)
    (clone / "data/embeddings").mkdir()
    shutil.copy(project / "data/embeddings/tiny.identity.json", clone / "data/embeddings/tiny.identity.json")  # in git too
    assert dvc(clone, "init", "--no-scm", "-q").returncode == 0
    before = dvc(clone, "status")
    assert "not in cache" in before.stdout + before.stderr or "deleted" in before.stdout  # what a clone without the cache would rerun

    def kda_line() -> str:
        status = subprocess.run([sys.executable, "-c", "from lrd.cli import main; main()", "matrix", "status"], cwd=clone, env=_env(),
                                capture_output=True, text=True, timeout=300)
        return next(x for x in status.stdout.splitlines() if x.startswith("train@tiny-kda-1 "))

    line = kda_line()
    assert " done " in line and "no DVC remote is configured" in line  # no `dvc pull` advice without a remote
    assert dvc(clone, "remote", "add", "-d", "shared", str(remote)).returncode == 0
    line = kda_line()
    assert " done " in line and "`dvc pull` brings them" in line  # the clone may skip it: its weights come from the remote
    pull = dvc(clone, "pull")
    assert pull.returncode == 0, pull.stderr[-2000:]
    after = dvc(clone, "status", "--json")
    assert json.loads(after.stdout) == {}, after.stdout[:2000]


def test_a_params_change_reruns_the_check_but_not_what_follows_it(project):
    """The params stage depends on all of params.yaml; its output stays the same while params are
    valid, so a change reruns only the stages that read the changed key."""
    original = (project / "params.yaml").read_text()
    try:
        _params_change(project)
    finally:
        (project / "params.yaml").write_text(original)
        assert dvc(project, "repro", "params").returncode == 0  # the check recorded for the original params again


def _params_change(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["heads"] = params["train"]["heads"]  # the same value, written again
    params["discover"]["max_epochs"] = params["discover"]["max_epochs"] + 1  # only discover (and after it) reads this
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run = dvc(project, "repro", "params", "download@tiny", "ingest@tiny", "embed@tiny")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Running stage 'params'" in run.stdout and "Running stage 'ingest@tiny'" not in run.stdout
    params["trian"] = {"seeds": [1]}  # a typo anywhere fails the run at once, even with every stage up to date
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bad = dvc(project, "repro", "ingest@tiny")
    assert bad.returncode != 0 and "unknown top-level key(s) `trian`" in bad.stdout + bad.stderr


def stale_after(project: Path, change) -> set[str]:
    """Change params.yaml with `change(params)`; return the stages that would re-run (those whose
    inputs changed and everything downstream of them); params.yaml is restored afterwards."""
    import networkx as nx
    from dvc.repo import Repo

    path = project / "params.yaml"
    before = path.read_text()
    params = yaml.safe_load(before)
    change(params)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        repo = Repo(str(project))
        # The params stage reruns on any change to params.yaml, but its output stays the same
        # while params are valid: nothing after it reruns on its account.
        changed = {name.split(":")[-1] for name in repo.status()} - {"params"}
        graph = repo.index.graph
        stages = {s.addressing.split(":")[-1]: s for s in graph.nodes}
        return changed | {a.addressing.split(":")[-1] for name in changed if name in stages for a in nx.ancestors(graph, stages[name])}
    finally:
        path.write_text(before)


def test_changing_the_llm_reruns_embed_discover_lrd_models_and_compare_only(project):
    stale = stale_after(project, lambda p: p["embed"].update(model="/models/another-llm", backend="hf-causal"))
    assert stale == {"embed@tiny", "discover@tiny", "train_lrd@tiny-kda_lrd-1", "train_lrd@tiny-kda_lrd-2", "compare@tiny", "summary"}


def test_adding_a_seed_runs_only_that_seed(project):
    stale = stale_after(project, lambda p: p["train"].update(seeds=[1, 2, 3]))
    assert stale == {"train@tiny-sasrec-3", "train@tiny-kda-3", "train_lrd@tiny-kda_lrd-3", "compare@tiny", "summary"}


def test_adding_a_model_runs_only_that_model(project):
    stale = stale_after(project, lambda p: p["train"].update(models=["sasrec", "kda", "rcf"]))
    assert stale == {"train@tiny-rcf-1", "train@tiny-rcf-2", "compare@tiny", "summary"}


def test_changing_latent_types_leaves_the_base_models(project):
    stale = stale_after(project, lambda p: p["discover"].update(latent_types=4))
    assert stale == {"discover@tiny", "train_lrd@tiny-kda_lrd-1", "train_lrd@tiny-kda_lrd-2", "compare@tiny", "summary"}


def test_a_forced_embed_with_the_same_vectors_leaves_everything_after_it(project):
    run = dvc(project, "repro", "-f", "-s", "embed@tiny")
    assert run.returncode == 0, run.stderr[-2000:]
    status = dvc(project, "status")
    assert "changed" not in status.stdout, status.stdout


def test_bytecode_caches_leave_every_stage_up_to_date(project):
    """Importing the code writes __pycache__/ beside it (where PYTHONDONTWRITEBYTECODE is unset);
    the folders stages depend on (lrd/models, lrd/train, ...) must hash the same."""
    cache = project / "lrd/models/__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "probe.cpython-311.pyc").write_bytes(b"bytecode")
    try:
        status = dvc(project, "status")
        assert status.returncode == 0 and "changed" not in status.stdout, status.stdout
    finally:
        (cache / "probe.cpython-311.pyc").unlink()


def test_vectors_from_another_cpu_leave_the_lrd_cells_done(project):
    """Issue: after re-embedding on another CPU (vectors equal within float noise, not byte-identical)
    every committed +LRD cell turned stale. They depend on what decides the vectors (the identity
    file), not on the vectors' bytes; discover, which computes from the bytes, still reruns."""
    import numpy as np

    store = project / "data/embeddings/tiny/all-minilm-l6-v2/vectors.npy"
    original = store.read_bytes()
    vectors = np.load(store)
    np.save(store, np.nextafter(vectors, np.float32(np.inf)))  # one ulp apart: another CPU's arithmetic
    try:
        assert dvc(project, "commit", "-f", "embed@tiny").returncode == 0
        status = dvc(project, "status").stdout
        assert "train_lrd@" not in status and "discover@tiny" in status, status
    finally:
        store.write_bytes(original)
        assert dvc(project, "commit", "-f", "embed@tiny").returncode == 0


def test_other_item_text_makes_the_lrd_cells_stale(project):
    stale = stale_after(project, lambda p: p["embed"].update(text_template="Title: {title}"))
    assert {"embed@tiny", "train_lrd@tiny-kda_lrd-1", "train_lrd@tiny-kda_lrd-2"} <= stale


def test_a_killed_training_run_keeps_its_results_and_resumes(project):
    results = project / "results/tiny/kda/1"
    before = {p.name: p.read_bytes() for p in results.iterdir()}
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"].update(max_epochs=30, stopping="patience", patience=30)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "-s", "train@tiny-kda-1"], cwd=project, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    state = project / "models/tiny/kda/1/state.pt"
    assert not state.exists()  # the finished run kept no resume point
    deadline = time.time() + 300
    while time.time() < deadline and not state.exists():
        time.sleep(0.2)  # wait until the new run has saved an epoch
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert {p.name: p.read_bytes() for p in results.iterdir()} == before  # a killed run reports nothing, loses nothing
    resumed = dvc(project, "repro", "-s", "train@tiny-kda-1")
    assert resumed.returncode == 0 and "resuming" in resumed.stdout + resumed.stderr
    assert not [p for p in (project / "models/tiny/kda").rglob(".*") if ".tmp-" in p.name]  # the rerun cleared any leftover


def test_a_failing_stage_leaves_the_previous_outputs(project):
    before = {p.name: p.read_bytes() for p in (project / "data/processed/tiny").iterdir()}
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["ingest"]["n_negatives"] = 1000  # more than the catalog has: ingest fails
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run = dvc(project, "repro", "-s", "ingest@tiny")
    assert run.returncode != 0
    assert "cannot get that many distinct negatives" in run.stderr + run.stdout
    assert "Traceback" not in run.stderr + run.stdout
    assert {p.name: p.read_bytes() for p in (project / "data/processed/tiny").iterdir()} == before


def test_a_forced_run_trains_afresh(project):
    run = dvc(project, "repro", "-f", "-s", "train@tiny-kda-2")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "resuming" not in run.stdout + run.stderr and "epoch 1/" in run.stdout + run.stderr
