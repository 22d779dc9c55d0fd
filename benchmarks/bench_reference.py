"""This project's KDA against the LRD reference code's KDA on the same data: seconds per training
epoch (each side's per-epoch sampling included) and per dev-split scoring, interleaved.

The reference (github.com/ysh-1998/LRD) is not part of this repository. Clone it, generate the
Amazon-style data into its data folder, and let it build its reader cache once:

    python benchmarks/amazon_like.py <LRD>/data/AmazonLike
    cd <LRD>/src && python main.py --model_name KDA --dataset AmazonLike --include_attr 1 \\
        --include_val 1 --emb_size 64 --num_heads 4 --num_layers 5 --epoch 1 --regenerate 1

then, from this repository's root:

    python benchmarks/bench_reference.py --ref <LRD>/src --threads 2

Both sides: 64 dims, 4 heads, 5 layers, history 20, Adam lr 1e-3, L2 1e-6, batch 256, seed
2019; this project with the params.yaml defaults otherwise (`train.eval_users` users per
scoring call), the reference with its `eval_batch_size` 256. Only the timings matter here: the
two models start from different random weights.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, report  # noqa: E402


def reference(src: Path, dataset: str, seed: int):
    """(train one epoch, score dev) closures for the reference's KDA, imported from `src`."""
    import numpy as np
    import pickle
    import torch

    sys.path.insert(0, str(src))
    cwd = os.getcwd()
    os.chdir(src)  # the reference reads its data relative to src/
    try:
        from helpers.BaseRunner import BaseRunner
        from helpers.DFTReader import DFTReader
        from models.sequential.KDA import KDA

        cache = src.parent / "data" / dataset / "DFTReader.pkl"
        if not cache.exists():
            raise SystemExit(f"{cache} not found: run the reference once on {dataset} with --regenerate 1 (see this script's doc)")
        corpus = pickle.load(open(cache, "rb"))
        p = argparse.ArgumentParser()
        p.add_argument("--only_predict", type=int, default=0)
        p.add_argument("--regenerate", type=int, default=0)
        for add in (DFTReader.parse_data_args, BaseRunner.parse_runner_args, KDA.parse_model_args):
            p = add(p)
        args = p.parse_args(f"--emb_size 64 --include_attr 1 --include_val 1 --num_heads 4 --num_layers 5 --lr 1e-3 --l2 1e-6 "
                            f"--history_max 20 --batch_size 256 --eval_batch_size 256 --dataset {dataset}".split())
        np.random.seed(seed)
        torch.manual_seed(seed)
        model = KDA(args, corpus)
        model.apply(model.init_weights)
        train, dev = KDA.Dataset(model, corpus, "train"), KDA.Dataset(model, corpus, "dev")
        runner = BaseRunner(args)
        epochs = iter(range(1, 10**6))
        return (lambda: runner.fit(model, train, epoch=next(epochs)),
                lambda: runner.evaluate(model, dev, [5], ["NDCG", "HR"]))
    finally:
        os.chdir(cwd)


def ours(source: Path, seed: int, tmp: Path):
    """(train one epoch, score dev) closures for this project's KDA on the same files."""
    import numpy as np

    from lrd.config.base import load_params
    from lrd.config.datasets import dataset_config
    from lrd.config.ingest import IngestConfig
    from lrd.config.train import DiscoverConfig, TrainConfig
    from lrd.data.ingest import ingest
    from lrd.data.readers import read_dataset
    from lrd.data.tables import DatasetTables
    from lrd.experiment import prepare
    from lrd.models import build_model
    from lrd.paths import Paths
    from lrd.train.device import seed_torch
    from lrd.train.evaluation import candidate_ranks
    from lrd.train.loop import optimizer_for

    params = load_params(REPO / "params.yaml")
    ds = dataset_config({"datasets": {"reference-data": {"format": "rechorus", "source": {"kind": "path", "path": str(source)}}}})
    cfg = IngestConfig.from_params(params, ds)
    paths = Paths(ds.name, root=tmp)
    ingest(read_dataset(ds.format, source, cfg), cfg).write(paths)
    run = prepare("kda", seed, DatasetTables.load(paths), TrainConfig.from_params(params), DiscoverConfig.from_params(params), paths)
    seed_torch(seed, run.device)
    model = build_model(run.cfg, run.catalog)
    opt = optimizer_for(model, run.train.spec(run.name).lr, run.train.l2)
    rng = np.random.default_rng(seed)

    def epoch():
        model.train()
        for batch in run.data.epoch(rng, run.train.batch_size, True, False):
            loss = model.losses(batch)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return epoch, lambda: candidate_ranks(model, run.data, "dev", run.scoring)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", type=Path, required=True, help="the reference's src/ folder")
    ap.add_argument("--dataset", default="AmazonLike", help="the folder under <ref>/../data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2019)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_reference_") as tmp:
        ref_train, ref_dev = reference(args.ref.resolve(), args.dataset, args.seed)
        our_train, our_dev = ours(args.ref.resolve().parent / "data" / args.dataset, args.seed, Path(tmp))
        report("threads", torch.get_num_threads())
        times = {}
        for _ in range(args.repeats):  # interleaved, so that a slow spell of the machine hits both
            for name, fn in (("reference_train_epoch", ref_train), ("ours_train_epoch", our_train),
                             ("reference_dev_scoring", ref_dev), ("ours_dev_scoring", our_dev)):
                t0 = time.perf_counter()
                fn()
                times.setdefault(name, []).append(time.perf_counter() - t0)
                report(f"{name}_seconds", round(times[name][-1], 2))
        for what in ("train_epoch", "dev_scoring"):
            ratios = [r / o for r, o in zip(times[f"reference_{what}"], times[f"ours_{what}"])]
            report(f"speedup_{what}", f"{min(ratios):.2f}-{max(ratios):.2f}")
            report(f"meets_target_{what}", min(ratios) >= 2.0)


if __name__ == "__main__":
    main()
