"""Does λ, the learning rate or the entropy term decide whether a jointly trained +LRD model's
latent types collapse? Train KDA+LRD a few epochs per setting, one thread, and read its relation
extractor after every epoch on discover's candidate pairs (the readout of lrd/discover/joint.py).

    python scripts/collapse_sweep.py Office --epochs 4 --seed 2019 --seed 2020

Settings: kda_lrd as params.yaml has it (λ = 10, lr 1e-3, α = 0.1, the reference objective),
then one change each: λ = 1, λ = 30, lr 1e-4, α = 0 (no entropy term), the expectation
objective, no KG loss. Nothing is written under data/, models/ or results/; the table goes to
stdout (README "The joint model's relations" quotes it). No dev ranking: the readout is what each epoch reports.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lrd.config.base import load_params  # noqa: E402
from lrd.config.datasets import dataset_config  # noqa: E402
from lrd.config.embed import EmbedConfig  # noqa: E402
from lrd.config.train import DiscoverConfig, TrainConfig  # noqa: E402
from lrd.data.tables import DatasetTables  # noqa: E402
from lrd.discover.joint import KEEP_SHARE, read_joint  # noqa: E402
from lrd.embed.store import open_store  # noqa: E402
from lrd.experiment import prepare  # noqa: E402
from lrd.train.device import denormals_flushed, seed_torch  # noqa: E402
from lrd.train.loop import Loop, LoopState, fit, optimizer_for  # noqa: E402
from lrd.train.stopping import Patience  # noqa: E402

BASE = {"arch": "kda", "lr": 1.0e-3, "lrd": True}
SETTINGS = {  # name: changes to the model's entry and to params.yaml sections
    "kda_lrd as is (λ 10, lr 1e-3, α 0.1)": {},
    "λ 1": {"model": {"lrd_weight": 1.0}},
    "λ 30": {"model": {"lrd_weight": 30.0}},
    "lr 1e-4": {"model": {"lr": 1.0e-4}},
    "α 0 (no entropy term)": {"discover": {"alpha": 0.0}},
    "expectation objective": {"model": {"objective": "expectation"}},
    # the predefined relations' vectors then learn only through q, as the latent ones do
    "no KG loss": {"train": {"kg_weight": 0.0}},
}


def sweep_run(params: dict, dataset: str, setting: str, seed: int, epochs: int, text: np.ndarray, heads: np.ndarray,
              tails: np.ndarray) -> list[dict]:
    changes = SETTINGS[setting]
    params = copy.deepcopy(params)
    params["models"]["collapse_sweep"] = {**BASE, **changes.get("model", {})}
    for section in ("discover", "train"):
        params[section].update(changes.get(section, {}))
    paths = dataset_config(params, dataset).paths
    cfg, dcfg = TrainConfig.from_params(params), DiscoverConfig.from_params(params)
    run = prepare("collapse_sweep", seed, DatasetTables.load(paths), cfg, dcfg, paths, text)
    graph, data, vectors = run.catalog.graph, run.data, torch.from_numpy(text)
    rows: list[dict] = []

    def readout() -> dict[str, float]:
        state = model.state_dict()
        mass, overall, _ = read_joint(state, vectors, graph, heads, tails)
        relations = state["relations.weight"].norm(dim=1).numpy()
        top = int(mass.argmax())
        return {"latent_q": float(mass[graph.latent].sum()), "kept": float((overall[graph.latent] >= KEEP_SHARE * len(heads)).sum()),
                "top_q": float(mass[top]), "top_type": top, "latent_norm_max": float(relations[graph.latent].max()),
                "predefined_norm_mean": float(relations[1:graph.latent.start].mean())}

    with denormals_flushed(run.device):
        seed_torch(seed, run.device)
        model = run.model()
        opt = optimizer_for(model, cfg.spec("collapse_sweep").lr, cfg.l2)
        rows.append({"epoch": 0, **readout()})
        loop = Loop(batches=lambda r: data.epoch(r, cfg.batch_size, graph.n_triples > 0, True), n_batches=-(-data.n_train // cfg.batch_size),
                    evaluate=readout, monitor="latent_q", max_epochs=epochs, amp=run.amp, device=run.device, label=setting,
                    on_epoch=None, progress=False)
        state = fit(model, opt, loop, LoopState(rng=np.random.default_rng(seed), stopper=Patience(patience=epochs + 1)))
    for row in state.curve:
        rows.append({k: row[k] for k in ("epoch", "latent_q", "kept", "top_q", "top_type", "latent_norm_max", "predefined_norm_mean", "rec", "lrd")})
    return [{**row, "top_type": graph.names[int(row["top_type"])]} for row in rows]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, action="append", help="repeatable (default: 2019)")
    parser.add_argument("--setting", action="append", choices=list(SETTINGS), help="only these (repeatable; default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    params = load_params(ROOT / "params.yaml")
    paths = dataset_config(params, args.dataset).paths
    tables = DatasetTables.load(paths)
    text = open_store(paths, EmbedConfig.from_params(params)).matrix(tables.n_items)
    pairs = pq.read_table(paths.latent, columns=["head", "tail"])
    heads, tails = (pairs.column(c).to_numpy().astype(np.int64) for c in ("head", "tail"))
    seeds = args.seed or [2019]
    print(f"{args.dataset}, seeds {', '.join(map(str, seeds))}, {args.epochs} epochs per setting; readout on discover's {len(heads):,} candidate pairs\n")
    print("| setting | seed | epoch | latent q | latent types kept | type of most q: its mean q | largest latent |r| | mean predefined |r| | rec loss | lrd loss |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for setting, seed in ((s, seed) for s in args.setting or SETTINGS for seed in seeds):
        t0 = time.perf_counter()
        for row in sweep_run(params, args.dataset, setting, seed, args.epochs, text, heads, tails):
            losses = f"{row['rec']:.4f} | {row['lrd']:.4f}" if "rec" in row else "- | -"
            print(f"| {setting} | {seed} | {row['epoch']} | {row['latent_q']:.3f} | {row['kept']:.0f} | {row['top_type']}: {row['top_q']:.3f} | "
                  f"{row['latent_norm_max']:.2f} | {row['predefined_norm_mean']:.2f} | {losses} |", flush=True)
        print(f"<!-- {setting}, seed {seed}: {time.perf_counter() - t0:.0f} s -->", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
