"""End to end: the real DVC pipeline (dvc repro) on a tiny dataset in a copy of the repo."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_params, write_recbole

REPO = Path(__file__).resolve().parents[1]


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VIRTUAL_ENV": sys.prefix, "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    for folder in ("lrd", "stages"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    raw = write_recbole(tmp_path_factory.mktemp("source") / "tiny")
    params = tiny_params(raw)
    params["train"]["models"] = ["sasrec", "kda", "kda_lrd"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert dvc(root, "init", "--no-scm", "-q").returncode == 0
    assert dvc(root, "config", "core.analytics", "false").returncode == 0
    return root


@pytest.mark.e2e
def test_dvc_repro_end_to_end(project):
    run = dvc(project, "repro")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for stage in ("download", "ingest", "embed", "discover", "train@sasrec", "train@kda", "train@kda_lrd", "compare"):
        assert f"Running stage '{stage}'" in run.stdout
    for path in ("data/processed/tiny/interactions.parquet", "data/processed/tiny/candidates.parquet",
                 "data/embeddings/tiny/all-minilm-l6-v2/index.faiss", "data/relations/tiny/latent.parquet",
                 "data/relations/tiny/latent_joint.parquet", "metrics/kda_lrd.json", "models/kda_lrd/ranks.parquet",
                 "reports/results.md", "reports/results.csv", "reports/results.png"):
        assert (project / path).exists(), path
    table = (project / "reports/results.md").read_text()
    assert "| kda_lrd |" in table and "| kda_lrd | kda |" in table

    # Nothing to do the second time.
    again = dvc(project, "repro")
    assert again.returncode == 0
    assert "Running stage" not in again.stdout

    shown = dvc(project, "metrics", "show")
    assert shown.returncode == 0 and "test.NDCG@5" in shown.stdout


@pytest.mark.e2e
def test_changing_the_llm_text_reruns_embed_and_after_only(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["embed"]["text_template"] = "Movie: {title}"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run = dvc(project, "repro")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ran = {line.split("'")[1] for line in run.stdout.splitlines() if line.startswith("Running stage")}
    assert {"embed", "discover", "compare", "train@kda_lrd"} <= ran
    assert not ran & {"download", "ingest"}


@pytest.mark.e2e
def test_a_crashing_stage_leaves_the_previous_outputs(project):
    before = {p.name: p.read_bytes() for p in (project / "data/processed/tiny").iterdir()}
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["ingest"]["n_negatives"] = 1000  # more than the catalog has: ingest fails
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run = dvc(project, "repro", "ingest")
    assert run.returncode != 0
    assert "cannot get that many distinct negatives" in run.stderr + run.stdout
    assert "Traceback" not in run.stderr + run.stdout
    after = {p.name: p.read_bytes() for p in (project / "data/processed/tiny").iterdir()}
    assert after == before
