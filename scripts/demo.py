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

from lrd.compare import CHARTS  # noqa: E402
from lrd.data.synthetic import DEMO_SEQUEL_PAIRS, demo_params, planted_by_type, write_demo_recbole  # noqa: E402


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
    charts = "".join(f"  - reports/tiny/{c}.png\n" for c in CHARTS)
    (out / "dvc.yaml").write_text(pipeline[: pipeline.index("\nplots:\n")] + "\nplots:\n" + charts)
    for folder in ("lrd", "stages"):
        shutil.copytree(ROOT / folder, out / folder, ignore=shutil.ignore_patterns("__pycache__"))
    raw = write_demo_recbole(out / "source" / "tiny")  # 40 users, 60 films with genres, years, directors, film series
    params = demo_params(yaml.safe_load((ROOT / "params.yaml").read_text()), raw)
    (out / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shallow_minilm(out / "llm" / SHALLOW)
    (out / ".gitignore").write_text("/llm/\n")  # model weights stay out of the demo's git history
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "VIRTUAL_ENV": sys.prefix, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    # A git repository of its own (the repository's .gitignore keeps demo/ out of it), so that
    # `dvc exp run` works here as the README shows it.
    git = ["git", "-c", "user.name=LRD demo", "-c", "user.email=demo@localhost"]
    steps = [git + ["init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], [sys.executable, "-m", "dvc", "repro"],
             git + ["add", "-A"], git + ["commit", "-q", "-m", "demo: the pipeline run once"]]
    for cmd in steps:
        if subprocess.run(cmd, cwd=out, env=env).returncode != 0:
            print(f"\n`{' '.join(cmd[-3:] if cmd[0] == 'git' else cmd[2:])}` failed in {out}", file=sys.stderr)
            return 1
    print(next_steps(out, time.perf_counter() - start, params))
    return 0


SHALLOW = "minilm-l3"


def shallow_minilm(folder: Path, layers: int = 3) -> Path:
    """A second LLM to swap to, offline: all-MiniLM-L6-v2 keeping its first `layers` of 6
    transformer layers (a real, smaller encoder: its vectors differ, and still carry meaning)."""
    from sentence_transformers import SentenceTransformer

    from lrd.embed.encoders import resolve_model_path

    model = SentenceTransformer(str(resolve_model_path("all-MiniLM-L6-v2")), device="cpu")
    bert = model[0].auto_model
    bert.encoder.layer = bert.encoder.layer[:layers]
    bert.config.num_hidden_layers = layers
    model.save(str(folder))
    return folder


def next_steps(out: Path, seconds: float, params: dict) -> str:
    """What to look at, as commands that work pasted into a new shell (absolute paths: a new
    shell starts anywhere, and without the project's environment, where `lrd` lives)."""
    return f"""
The pipeline ran end to end in {seconds:.0f} s on a generated tiny dataset, in {out}.
Look at what it made, in a new shell:

  . {Path(sys.prefix) / "bin" / "activate"}
  cd {out}
  cat reports/tiny/results.md                 # every model, mean ± std over 2 seeds, lifts with CIs
  lrd sql --tables                            # the tables you can query
  lrd relations types                         # predefined and discovered relation types
  {planted_line(out, params)}
  lrd matrix status                           # every training run, its state and time
  dvc metrics show                            # test means and lifts per model
  dvc plots show                              # the charts (reports/tiny/*.png) in one page
  dvc repro                                   # nothing to do: every stage is cached
  dvc exp run discover@tiny -S "embed.text_template='{{title}}'"   # the LLM reads titles only: embed and discover rerun
  lrd neighbors 1 --k 5                       # nearest films by the new vectors (metrics/tiny/embed.json: what ran)
  dvc exp run discover@tiny -S embed.model=llm/{SHALLOW}   # another LLM: MiniLM's first 3 of 6 layers, made by the demo
  lrd neighbors 1 --k 5                       # other neighbours again; metrics/tiny/embed.json names llm/{SHALLOW}
  lrd relations readout                       # what discover's types mean with that LLM's vectors
  dvc exp show --only-changed                 # the experiments beside the first run

The real thing, in the repository: `dvc repro discover@ml-100k` (a few minutes), then
`lrd matrix status` to see what the full matrix costs before `lrd matrix run` (it asks before
starting anything long) or `make repro`."""


def planted_line(out: Path, params: dict) -> str:
    """The `lrd relations show` line for the latent type holding most of the planted film series."""
    import pyarrow.parquet as pq

    from lrd.discover.strength import MIN_STRENGTH
    from lrd.paths import Paths

    paths = Paths("tiny", out)
    found = planted_by_type(pq.read_table(paths.latent), pq.read_table(paths.table("items")), params["discover"]["min_probability"],
                            MIN_STRENGTH)
    total = DEMO_SEQUEL_PAIRS
    if not found:
        return "lrd relations show --type latent_1".ljust(44) + f"# one latent type (none holds the {total} planted sequel pairs)"
    types = pq.read_table(paths.relation_types).to_pydict()
    name = types["name"][types["id"].index(next(iter(found)))]
    return (f"lrd relations show --type {name}".ljust(44) + f"# the planted film series (sequels watched one after the other): "
            f"{next(iter(found.values()))} of their {total} pairs here, {sum(found.values())} in all latent types")


if __name__ == "__main__":
    sys.exit(main())
