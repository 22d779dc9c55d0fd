"""discover: train LRD standalone, label candidate item pairs with latent relation types.

Writes data/relations/<dataset>/{latent,relation_types}.parquet, models/discover/checkpoint.pt,
metrics/discover.json and plots/discover.csv.
"""

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from lrd import schemas
from lrd.config import DiscoverConfig, EmbedConfig, dataset_config
from lrd.discover import (
    DiscoveryModel, Readout, cooccur_keys, latent_names, normalized_mutual_information, predefined_pairs,
    text_matrix, train_discovery, write_triplets,
)
from lrd.embed.store import EmbeddingStore, store_dir
from lrd.graph import RelationGraph
from lrd.io import atomic_path, write_json, write_parquet
from lrd.models.lrd import LatentRelationDiscovery
from lrd.reports import write_curve
from lrd.sequences import Sequences
from lrd.stage import run_stage
from lrd.train.data import DatasetTables, TrainingData
from lrd.train.trainer import seed_torch

log = logging.getLogger("lrd.discover")


def run(params: dict) -> None:
    dataset = dataset_config(params)
    cfg = DiscoverConfig.from_params(params)
    tables = DatasetTables.load(dataset.processed_dir)
    store = EmbeddingStore.open(store_dir(dataset.name, EmbedConfig.from_params(params)))
    text = text_matrix(store, tables.n_items)
    graph = RelationGraph.from_tables(
        tables.relation_types, tables.relations, tables.n_items, kinds=cfg.model_relations, latent=latent_names(cfg.latent_types)
    )
    seqs = Sequences.from_table(tables.interactions, tables.n_users, tables.n_items)
    data = TrainingData(seqs, tables.candidates, cfg.history_max, graph)
    kg_weight = cfg.kg_weight if cfg.kg_weight is not None else graph.n_triples / tables.interactions.num_rows
    log.info("%d items, %d relation types (%d latent), %d training pairs rows, KG weight %.3f",
             tables.n_items, graph.n_relations, cfg.latent_types, data.n_train, kg_weight)

    seed_torch(cfg.seed, torch.device("cpu"))
    lrd = LatentRelationDiscovery(text, cfg.dim, graph.n_relations, cfg.alpha, cfg.drop_virtual, cfg.objective)
    model = DiscoveryModel(graph, cfg.dim, lrd, kg_weight)
    result = train_discovery(model, data, cfg)

    out = Path("data/relations") / dataset.name
    cooccur = cooccur_keys(seqs, cfg.history_max)
    item_ids = np.arange(1, tables.n_items + 1)
    k = min(cfg.knn, tables.n_items - 1)
    neighbours = np.concatenate([store.neighbors(chunk, k)[0] for chunk in np.array_split(item_ids, max(1, len(item_ids) // 65536))])
    knn_heads, knn_tails = np.repeat(item_ids, k), neighbours.reshape(-1).astype(np.int64)
    ok = knn_tails > 0
    pre_keys, pre_codes, pre_types, no_predefined = predefined_pairs(tables.relations, tables.n_items)
    readout = Readout(tables.n_items, cfg.latent_types, len(pre_types), cfg.min_probability)
    rows = write_triplets(out / "latent.parquet", lrd, graph, cooccur, knn_heads[ok], knn_tails[ok],
                          (pre_keys, pre_codes), readout, cfg.row_group_size)

    first_latent = tables.relation_types.num_rows
    latent_types = pa.table({
        "id": pa.array(np.arange(first_latent, first_latent + cfg.latent_types), pa.int16()),
        "name": latent_names(cfg.latent_types),
        "kind": ["latent"] * cfg.latent_types,
    }, schema=schemas.RELATION_TYPES)
    write_parquet(pa.concat_tables([tables.relation_types, latent_types]), out / "relation_types.parquet")

    checkpoint = Path("models/discover/checkpoint.pt")
    meta = checkpoint_meta(cfg, graph, store)
    with atomic_path(checkpoint) as tmp:
        torch.save({"meta": meta, "state": {k: v for k, v in model.state_dict().items()}}, tmp)

    names = tables.relation_types.column("name").to_pylist()
    confident_items = readout.confident_items[1:]
    lacking = no_predefined[1:]
    metrics = {
        "epochs": len(result.curve),
        "best_epoch": result.best_epoch,
        "holdout_lrd_loss": result.holdout["lrd"],
        "reconstruction_accuracy": result.holdout["lrd_accuracy"],
        "pairs": rows,
        "pairs_cooccur": int(len(cooccur)),
        "pairs_knn": int(ok.sum()),
        "mean_entropy": readout.entropy_sum / max(readout.pairs, 1),
        "relation_usage": dict(zip(latent_names(cfg.latent_types), readout.usage.tolist())),
        "confident_relation_usage": dict(zip(latent_names(cfg.latent_types), readout.confident_usage.tolist())),
        "nmi_latent_vs_predefined": normalized_mutual_information(readout.contingency),
        "nmi_pairs": int(readout.contingency.sum()),
        "nmi_predefined_types": [names[t] for t in pre_types],
        "items_without_predefined_relation": int(lacking.sum()),
        "items_gaining_latent_relation": int((lacking & confident_items).sum()),
        "share_items_gaining_latent_relation": float((lacking & confident_items).sum() / len(lacking)),
    }
    write_json(metrics, "metrics/discover.json")
    write_curve(result.curve, Path("plots/discover.csv"))
    log.info("%d pairs labelled -> %s; held-out reconstruction accuracy %.3f, NMI with predefined types %s, "
             "%d of %d items without a predefined item-item relation gained a confident latent one",
             rows, out / "latent.parquet", metrics["reconstruction_accuracy"],
             f"{metrics['nmi_latent_vs_predefined']:.3f}" if metrics["nmi_latent_vs_predefined"] is not None else "n/a",
             metrics["items_gaining_latent_relation"], metrics["items_without_predefined_relation"])


def checkpoint_meta(cfg: DiscoverConfig, graph: RelationGraph, store: EmbeddingStore) -> dict:
    """What a model initialised from this checkpoint must agree with."""
    return {
        "latent_types": cfg.latent_types,
        "dim": cfg.dim,
        "relations": graph.names,
        "n_entities": graph.n_entities,
        "n_items": graph.n_items,
        "embedding_model": store.manifest["model"],
        "embedding_dim": store.dim,
        "alpha": cfg.alpha,
        "drop_virtual": cfg.drop_virtual,
        "objective": cfg.objective,
    }


if __name__ == "__main__":
    run_stage("discover", run)
