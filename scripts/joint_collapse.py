"""Why a jointly trained +LRD model's latent types collapse, read from its weights (no training).

    python scripts/joint_collapse.py Office kda_lrd/2019 kda_lrd/2020

For each run (results/<ds>/<model>/<seed>/relations.pt) on discover's candidate pairs, each with
one random negative: where q goes (argmax counts and mean q per relation type), how much q
depends on the pair (the extractor's logits across pairs vs across types), and the decoder's
score margin Δs_r = s_r(h, t) − s_r(h⁻, t) per relation channel r, which the reference
objective −mean_r log mean_h σ(q_r · Δs_r) rewards q for following. README "The joint model's
relations" quotes it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lrd.config.base import load_params  # noqa: E402
from lrd.config.datasets import dataset_config  # noqa: E402
from lrd.config.embed import EmbedConfig  # noqa: E402
from lrd.data.tables import DatasetTables  # noqa: E402
from lrd.discover.joint import extractor  # noqa: E402
from lrd.embed.store import open_store  # noqa: E402
from lrd.train.checkpoint import load_weights  # noqa: E402


def rounded(values, digits: int = 2) -> list[float]:
    return [round(float(v), digits) for v in values]


def read_run(state: dict, text: torch.Tensor, heads: torch.Tensor, tails: torch.Tensor, negatives: torch.Tensor) -> None:
    lrd = extractor(state, text)
    r = lrd.extract.out_features
    q = lrd.relation_probs(heads, tails)  # pairs x R
    entities, relations = state["entities.weight"], state["relations.weight"]
    delta = entities[heads] - entities[negatives]
    margin = (delta * entities[tails] + delta) @ relations[1:].T  # Δs_r per unit q, r = 1..R-1 (0 is "no relation")
    logits = lrd.logits(heads[:20000], tails[:20000])
    print(f"  argmax of q over all types: {np.bincount(q.argmax(1).numpy(), minlength=r).tolist()}")
    print(f"  mean q per type:            {rounded(q.mean(0), 3)}")
    print(f"  mean max q: {q.max(1).values.mean():.3f}")
    print(f"  logits' std across pairs (per type, mean) {logits.std(0).mean():.3f}; across types (per pair, mean) {logits.std(1).mean():.3f}")
    print(f"  mean Δs_r (r = 1..):        {rounded(margin.mean(0))}")
    print(f"  share of pairs Δs_r > 0:    {rounded((margin > 0).float().mean(0))}")
    print(f"  |relation vector| (r = 0..): {rounded(relations.norm(dim=1))}")
    print(f"  mean σ(q_r Δs_r) (r = 1..): {rounded(torch.sigmoid(q[:, 1:] * margin).mean(0), 3)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("runs", nargs="+", help="<model>/<seed>, e.g. kda_lrd/2019")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    params = load_params(ROOT / "params.yaml")
    paths = dataset_config(params, args.dataset).paths
    tables = DatasetTables.load(paths)
    text = torch.from_numpy(open_store(paths, EmbedConfig.from_params(params)).matrix(tables.n_items))
    pairs = pq.read_table(paths.latent, columns=["head", "tail"])
    heads, tails = (torch.from_numpy(pairs.column(c).to_numpy().astype(np.int64)) for c in ("head", "tail"))
    negatives = torch.from_numpy(np.random.default_rng(0).integers(1, tables.n_items + 1, len(heads)))
    print(f"{args.dataset}: {len(heads)} candidate pairs of discover, one random negative each")
    for run in args.runs:
        model, seed = run.split("/")
        print(f"{model} {seed}:")
        read_run(load_weights(paths.run_relations(model, int(seed)), f"re-run the cell {model} {seed}"), text, heads, tails, negatives)
    return 0


if __name__ == "__main__":
    sys.exit(main())
