"""Does a code change leave training results as they were? Train tiny cells with the code of an
earlier commit and with the working tree, on the same generated data, and compare what they
computed (test/dev metrics, epochs, each user's rank, the curve without timings).

    python scripts/identity_check.py <commit> [--models kda kda_lrd rcf sasrec]

Identical files are the proof that lets finished cells be recorded with the new code
(`lrd matrix commit <cell>`) instead of running them again. One thread, a few seconds per model.

With --accept-resume-points, and only when every model is identical, the resume points under
models/ that the old code saved are marked as the new code's, so that interrupted cells
continue where they stopped instead of starting over (a resume point names the code that made
it, and a run refuses one made by other code).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lrd.data.synthetic import tiny_params, write_recbole  # noqa: E402


def run_cells(code: Path, work: Path, raw: Path, models: list[str], params: dict) -> None:
    """ingest, embed and each model's cell, with the code of `code`, in `work`."""
    shutil.copytree(raw, work / "data/raw/tiny")
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    steps = [["stages.ingest", "tiny"], ["stages.embed", "tiny"]]
    steps += [["stages.train_lrd" if params["models"][m].get("lrd") else "stages.train", "tiny", m, "1"] for m in models]
    for step in steps:
        proc = subprocess.run([sys.executable, "-m", *step], cwd=work, env=env, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{code}: {' '.join(step)} failed:\n{proc.stderr[-2000:]}")


def code_fingerprint(code: Path) -> str:
    """The resume-point fingerprint of the training code in `code`, as a training stage computes it."""
    probe = "import stages.train_lrd; from lrd.train.checkpoint import code_fingerprint; print(code_fingerprint())"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=code, env={**os.environ, "PYTHONPATH": str(code)}, capture_output=True,
                          text=True, check=True)
    return proc.stdout.strip()


def accept_resume_points(old: str, new: str) -> None:
    import torch

    from lrd.config.train import ModelConfig
    from lrd.train.checkpoint import save_file

    # A setting the new code added, at its default, is what the old code did (the identity check ran at the defaults).
    added = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    for state in sorted((ROOT / "models").glob("*/*/*/state.pt")):
        saved = torch.load(state, map_location="cpu", weights_only=True)
        if saved["fingerprint"].get("code") == old:
            saved["fingerprint"]["code"] = new
            model = saved["fingerprint"]["model"]
            saved["fingerprint"]["model"] = {**{k: v for k, v in added.items() if k not in model}, **model}
            save_file(saved, state)
            print(f"{state.relative_to(ROOT)}: made by the old code; now resumes with the new")


def computed(work: Path, model: str) -> dict:
    folder = work / "results/tiny" / model / "1"
    metrics = json.loads((folder / "metrics.json").read_text())
    curve = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader((folder / "curve.csv").open())]
    import pyarrow.parquet as pq

    return {"test": metrics["test"], "dev": metrics["dev"], "epochs": metrics["epochs"], "best_epoch": metrics["best_epoch"],
            "ranks": pq.read_table(folder / "ranks.parquet").to_pydict(), "curve": curve}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commit")
    parser.add_argument("--models", nargs="+", default=["kda", "kda_lrd", "rcf", "sasrec"])
    parser.add_argument("--accept-resume-points", action="store_true", help="see above")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "old-code"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old), args.commit], cwd=ROOT, check=True)
        try:
            raw = write_recbole(tmp / "raw")
            params = tiny_params(raw)
            params["train"].update(models=[m for m in args.models if not params["models"][m].get("lrd")],
                                   lrd_models=[m for m in args.models if params["models"][m].get("lrd")], max_epochs=3)
            params["train"].pop("ablation_models", None)  # a key older code does not know
            for name, code in (("old", old), ("new", ROOT)):
                (tmp / name).mkdir()
                run_cells(code, tmp / name, raw, args.models, params)
            same = {m: computed(tmp / "old", m) == computed(tmp / "new", m) for m in args.models}
            fingerprints = (code_fingerprint(old), code_fingerprint(ROOT))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT)
    for model, equal in same.items():
        print(f"{model}: {'identical' if equal else 'DIFFERENT'} (metrics, epochs, ranks, curve) between {args.commit} and the working tree")
    if args.accept_resume_points and all(same.values()):
        accept_resume_points(*fingerprints)
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
