"""train <model>: fit one model of params.yaml `models` for each seed in `train.seeds`.

Writes models/<model>/ (best-dev checkpoint per seed, per-user ranks, and for +LRD models the
jointly trained latent relations), metrics/<model>.json and plots/train/<model>.csv.
"""

import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from lrd import schemas
from lrd.config import DiscoverConfig, EmbedConfig, TrainConfig, dataset_config
from lrd.embed.store import EmbeddingStore, store_dir
from lrd.errors import ModelError
from lrd.io import atomic_path, write_json, write_parquet
from lrd.reports import write_curve
from lrd.sequences import Sequences
from lrd.stage import run_stage
from lrd.discover import text_matrix
from lrd.train.build import build_model, init_from_discover, parameter_count, relabel_pairs, relation_graph
from lrd.train.data import DatasetTables, TrainingData
from lrd.evaluate import ranking_metrics
from lrd.train.trainer import FitSettings, autocast_dtype, fit, full_ranks, seed_torch

log = logging.getLogger("lrd.train")


def run(params: dict, name: str) -> None:
    dataset = dataset_config(params)
    cfg = TrainConfig.from_params(params)
    dcfg = DiscoverConfig.from_params(params)
    spec = cfg.spec(name)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tables = DatasetTables.load(dataset.processed_dir)
    latent_table = Path("data/relations") / dataset.name / "latent.parquet"
    graph = relation_graph(spec, cfg, dcfg, tables, latent_table)
    text = None
    if spec.lrd:
        text = text_matrix(EmbeddingStore.open(store_dir(dataset.name, EmbedConfig.from_params(params))), tables.n_items)
    seqs = Sequences.from_table(tables.interactions, tables.n_users, tables.n_items)
    data = TrainingData(seqs, tables.candidates, cfg.history_max, graph)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = autocast_dtype(cfg.precision, device)
    log.info("%s (%s%s%s): %d training rows, %s relation channels, precision %s, device %s, seeds %s",
             name, spec.arch, " + LRD" if spec.lrd else "", " + static latent" if spec.static_latent else "",
             data.n_train, graph.n_relations if graph else "no", amp or "fp32", device, list(cfg.seeds))

    results, curves, ranks = [], [], []
    out_dir = Path("models") / name
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        for seed in cfg.seeds:
            seed_torch(seed, device)
            model = build_model(spec, cfg, dcfg, tables, graph, text)
            if spec.lrd and cfg.init_from_discover:
                init_from_discover(model, graph, cfg, dcfg)
            model.to(device)
            settings = FitSettings(
                lr=spec.lr, l2=cfg.l2, batch_size=cfg.batch_size, max_epochs=cfg.max_epochs, patience=cfg.patience,
                eval_users=cfg.eval_users, use_kg=graph is not None and graph.n_triples > 0, use_lrd=spec.lrd, amp=amp, device=device,
            )
            try:
                result = fit(model, data, settings, seed, tmp / f"seed{seed}.pt", label=f"{name} seed {seed}")
            except ModelError as exc:
                # The output folder is discarded; keep the best checkpoint where people can find it.
                rescued = Path("models") / f"{name}-seed{seed}-before-failure.pt"
                if (tmp / f"seed{seed}.pt").exists():
                    shutil.copyfile(tmp / f"seed{seed}.pt", rescued)
                raise ModelError(str(exc).replace(str(tmp / f"seed{seed}.pt"), str(rescued))) from None
            results.append((seed, result))
            curves += [{"seed": seed, **row} for row in result.curve]
            splits = [("dev", "dev", result.dev_ranks), ("test", "test", result.test_ranks)]
            if cfg.full_ranking:
                full = full_ranks(model, data, "test", settings)
                result.test_full = ranking_metrics(full)
                splits.append(("test_full", "test", full))
                log.info("%s seed %d, ranking all items: test NDCG@10 %.4f HR@10 %.4f", name, seed, result.test_full["NDCG@10"], result.test_full["HR@10"])
            for split, source, r in splits:
                ev = data.eval[source]
                ranks.append(pa.table({
                    "model": [name] * len(r), "seed": np.full(len(r), seed, np.int32), "split": [split] * len(r),
                    "user": ev.users, "target": ev.candidates[:, 0].astype(np.int32), "rank": r,
                }, schema=schemas.RANKS))
            log.info("%s seed %d: best epoch %d of %d; test NDCG@5 %.4f HR@5 %.4f NDCG@10 %.4f HR@10 %.4f; %.1f s per epoch",
                     name, seed, result.best_epoch, result.epochs, result.test["NDCG@5"], result.test["HR@5"],
                     result.test["NDCG@10"], result.test["HR@10"], result.seconds_per_epoch)
        write_parquet(pa.concat_tables(ranks), tmp / "ranks.parquet")
        if spec.lrd and latent_table.exists():
            n = relabel_pairs(latent_table, tmp / "latent_joint.parquet", model.lrd, graph)
            log.info("re-labelled %d discovered pairs with the jointly trained LRD module", n)

    write_json(summary(name, spec, cfg, results, model, graph, amp), Path("metrics") / f"{name}.json")
    write_curve(curves, Path("plots/train") / f"{name}.csv")


def summary(name, spec, cfg, results, model, graph, amp) -> dict:
    def mean_std(key):
        values = {m: [getattr(r, key)[m] for _, r in results] for m in results[0][1].test}
        return {m: float(np.mean(v)) for m, v in values.items()}, {m: float(np.std(v)) for m, v in values.items()}

    test, test_std = mean_std("test")
    dev, dev_std = mean_std("dev")
    extra = {}
    if results[0][1].test_full is not None:
        extra["test_full_ranking"], extra["test_full_ranking_std"] = mean_std("test_full")
    return {
        "model": name,
        "arch": spec.arch,
        "lrd": spec.lrd,
        "static_latent": spec.static_latent,
        "seeds": [s for s, _ in results],
        "test": test,
        "test_std": test_std,
        "dev": dev,
        "dev_std": dev_std,
        **extra,
        "relation_channels": graph.n_relations if graph else 0,
        "parameters": parameter_count(model),
        "precision": str(amp or "fp32"),
        "per_seed": [
            {"seed": s, "best_epoch": r.best_epoch, "epochs": r.epochs, "test": r.test, "dev": r.dev,
             "train_seconds": round(r.train_seconds, 1), "eval_seconds": round(r.eval_seconds, 1),
             "seconds_per_epoch": round(r.seconds_per_epoch, 2)}
            for s, r in results
        ],
    }


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: stages/run train <model>   (a name from params.yaml `models`)")
    run_stage("train", lambda params: run(params, sys.argv[1]))
