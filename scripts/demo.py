"""The whole pipeline in about a minute: a generated tiny dataset, tiny models, the real DVC
pipeline (download, ingest, embed, discover, every model, compare, summary) in a folder of
its own (default demo/), then what to look at.

    make demo            # or: python scripts/demo.py [--out demo]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lrd.data.synthetic import pipeline_params, write_recbole  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "demo"), help="folder for the demo project (made afresh; default demo/)")
    out = Path(parser.parse_args(argv).out).resolve()
    start = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy(ROOT / ".dvcignore", out / ".dvcignore")
    pipeline = (ROOT / "dvc.yaml").read_text()  # with the charts of the tiny dataset for `dvc plots show`
    charts = "".join(f"  - reports/tiny/{c}.png\n" for c in ("curves", "lifts", "discover"))
    (out / "dvc.yaml").write_text(pipeline[: pipeline.index("\nplots:\n")] + "\nplots:\n" + charts)
    for folder in ("lrd", "stages"):
        shutil.copytree(ROOT / folder, out / folder, ignore=shutil.ignore_patterns("__pycache__"))
    raw = write_recbole(out / "source" / "tiny")  # 40 users, 30 films with genres, years, directors, sequels
    params = pipeline_params(yaml.safe_load((ROOT / "params.yaml").read_text()), raw)
    params["train"].update(models=["sasrec", "rcf", "kda"], lrd_models=["rcf_lrd", "kda_lrd"], seeds=[1, 2])
    (out / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "VIRTUAL_ENV": sys.prefix, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for cmd in (["init", "--no-scm", "-q"], ["repro"]):
        if subprocess.run([sys.executable, "-m", "dvc", *cmd], cwd=out, env=env).returncode != 0:
            print(f"\n`dvc {' '.join(cmd)}` failed in {out}", file=sys.stderr)
            return 1
    print(f"""
The pipeline ran end to end in {time.perf_counter() - start:.0f} s on a generated tiny dataset, in {out}.
Look at what it made (from that folder, with the project's environment active: `lrd` lives there):

  . {os.path.relpath(Path(sys.prefix) / "bin" / "activate")}
  cd {os.path.relpath(out)}
  cat reports/tiny/results.md                 # every model, mean ± std over 2 seeds, lifts with CIs
  lrd sql --tables                            # the tables you can query
  lrd relations types                         # predefined and discovered relation types
  lrd relations show --type latent_1          # one latent type's confident pairs, with titles
  lrd matrix status                           # every training run, its state and time
  dvc metrics show                            # test means and lifts per model
  dvc plots show                              # the charts (reports/tiny/*.png) in one page
  dvc repro                                   # nothing to do: every stage is cached

The real thing, in the repository: `dvc repro discover@ml-100k` (a few minutes), then
`lrd matrix status` to see what the full matrix costs before `lrd matrix run` or `make repro`.""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
