"""The `discover` stage's work: train LRD standalone, label candidate pairs, read out quality."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from lrd import schemas
from lrd.config.train import DiscoverConfig
from lrd.data.tables import DatasetTables
from lrd.discover.describe import with_descriptions
from lrd.discover.labels import decoder_scale, write_labelled_pairs
from lrd.discover.model import DiscoveryModel, train_discovery
from lrd.discover.coherence import ItemAttributes
from lrd.discover.pairs import (EXACT_KNN_MAX_ITEMS, attribute_vectors, cooccur_counts, cooccur_pmi, exact_knn_keys, knn_keys,
                                labelled_groups, predefined_pairs, strong_cooccur)
from lrd.discover.readout import Readout, normalized_mutual_information, read_latent, readout_for
from lrd.embed.store import EmbeddingStore
from lrd.errors import ConfigError, ModelError
from lrd.graph import RelationGraph, latent_names
from lrd.io import atomic_path, read_parquet, write_csv, write_json, write_parquet
from lrd.keys import KeySet
from lrd.models.lrd import LatentRelationDiscovery
from lrd.paths import Paths
from lrd.sequences import Sequences
from lrd.train.batches import TrainingData
from lrd.train.device import seed_torch

log = logging.getLogger(__name__)
# Less free space than this after a failed write: the disk filled up.
FULL_DISK_BYTES = 1 << 20


def discover(tables: DatasetTables, store: EmbeddingStore, cfg: DiscoverConfig, paths: Paths) -> dict:
    """Write the latent triplet table, relation types, checkpoint, metrics and curve; return the metrics."""
    kinds = tables.model_relations(cfg.model_relations) if cfg.predefined_types else ()
    graph = RelationGraph.from_tables(tables.relation_types, tables.relations, tables.n_items, kinds=kinds, latent=latent_names(cfg.latent_types))
    seqs = Sequences.from_table(tables.interactions, tables.n_users, tables.n_items)
    data = TrainingData(seqs, tables.candidates, cfg.history_max, graph)
    kg_weight = graph.kg_weight(cfg.kg_weight, tables.interactions.num_rows)
    log.info("%d items, %d relation types (%d latent), %d training pairs rows, KG weight %.3f",
             tables.n_items, graph.n_relations, cfg.latent_types, data.n_train, kg_weight)

    check_engine(cfg)
    counts = cooccur_counts(seqs, cfg.history_max)
    focus = None
    if cfg.train_min_pmi is not None:
        focus = KeySet(counts[0][cooccur_pmi(*counts, tables.n_items) >= cfg.train_min_pmi], is_sorted=True)
        log.info("training on the %d of %d co-occurring pairs with PMI >= %g", len(focus), len(counts[0]), cfg.train_min_pmi)

    seed_torch(cfg.seed, torch.device("cpu"))
    vectors = store.matrix(tables.n_items)
    text = torch.from_numpy(vectors)
    lrd = LatentRelationDiscovery(text, cfg.dim, graph.n_relations, cfg.alpha, cfg.drop_virtual, cfg.objective)
    model = DiscoveryModel(graph, cfg.dim, lrd, kg_weight, focus)
    result = train_discovery(model, data, cfg)

    pre_keys, pre_codes, pre_types, no_predefined = predefined_pairs(tables.relations, tables.n_items)
    readout = Readout(tables.n_items, cfg.latent_types, cfg.min_probability, pre_keys, pre_codes, len(pre_types))
    scale = decoder_scale(lrd, graph, model.entities.weight, model.relations.weight)  # each pair's strength
    if cfg.engine == "ray":
        from lrd.discover import ray_engine  # imported here only: nothing loads Ray unless an engine is ray

        keep = strong_cooccur(*counts, tables.n_items, cfg.cooccur_min_count, cfg.cooccur_min_pmi)
        rows, n_cooccur, n_knn = ray_engine.label_candidates(paths.latent, lrd, graph, seqs, store, cfg, readout, scale,
                                                             None if keep.all() else counts[0][keep])
    else:
        cooccur = counts[0][strong_cooccur(*counts, tables.n_items, cfg.cooccur_min_count, cfg.cooccur_min_pmi)]
        if cfg.knn_attributes > 0:
            if tables.n_items > EXACT_KNN_MAX_ITEMS:
                raise ConfigError(f"params.yaml: `discover.knn_attributes` searches neighbours exactly, up to {EXACT_KNN_MAX_ITEMS:,} items; "
                                  f"this dataset has {tables.n_items:,}: set it to 0")
            attrs = ItemAttributes.from_tables(tables.relation_types, tables.relations, tables.n_items)
            unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            joined = np.concatenate([unit, cfg.knn_attributes * attribute_vectors(attrs.incidence, attrs.groups, tables.n_items)], axis=1)
            knn, n_knn = exact_knn_keys(joined, cfg.knn)
        else:
            knn, n_knn = knn_keys(store, tables.n_items, cfg.knn)
        rows = write_labelled_pairs(paths.latent, lrd, graph, labelled_groups(cooccur, knn, cfg.row_group_size), scale, readout)
        n_cooccur = len(cooccur)

    first_latent = tables.relation_types.num_rows
    latent_types = pa.table({
        "id": pa.array(np.arange(first_latent, first_latent + cfg.latent_types), pa.int16()),
        "name": latent_names(cfg.latent_types),
        "kind": ["latent"] * cfg.latent_types,
    }, schema=schemas.RELATION_TYPES)
    write_parquet(pa.concat_tables([tables.relation_types, latent_types]), paths.relation_types)
    with atomic_path(paths.discover_checkpoint) as tmp:
        _save(torch.save, {"meta": checkpoint_meta(cfg, graph, store), "state": model.state_dict()}, tmp)

    names = tables.relation_types.column("name").to_pylist()
    lacking, gained = no_predefined[1:], no_predefined[1:] & readout.confident_items[1:]
    metrics = {
        "epochs": len(result.curve),
        "best_epoch": result.best_epoch,
        "holdout_lrd_loss": result.holdout["lrd"],
        "reconstruction_accuracy": result.holdout["lrd_accuracy"],
        "pairs": rows,
        "pairs_cooccur": int(n_cooccur),
        "pairs_knn": n_knn,
        "mean_entropy": readout.entropy_sum / max(readout.pairs, 1),
        "relation_usage": dict(zip(latent_names(cfg.latent_types), readout.usage.tolist())),
        "confident_relation_usage": dict(zip(latent_names(cfg.latent_types), readout.confident_usage.tolist())),
        "nmi_latent_vs_predefined": normalized_mutual_information(readout.contingency),
        "nmi_pairs": int(readout.contingency.sum()),
        "nmi_predefined_types": [names[t] for t in pre_types],
        "items_without_predefined_relation": int(lacking.sum()),
        "items_gaining_latent_relation": int(gained.sum()),
        "share_items_gaining_latent_relation": float(gained.sum() / len(lacking)),
    }
    # What a person reads (also reports/<ds>/relations.md): per type, coherence over chance,
    # sources, top titled pairs; the known relations' recall.
    relation_types = read_parquet(paths.relation_types, "discover")
    metrics["readout"] = readout_for(tables, relation_types, read_latent(paths.latent, "discover"), paths.dataset, cfg.min_probability, top=3)
    # Each latent type's description beside its name, for `lrd sql` and `lrd relations types`.
    write_parquet(with_descriptions(relation_types, metrics["readout"]), paths.relation_types)
    write_json(metrics, paths.discover_metrics)
    write_csv(result.curve, paths.discover_curve)
    return metrics


def check_engine(cfg: DiscoverConfig) -> None:
    """The ray engine's workers search the FAISS index: exact neighbours by text and attributes are the local engine's."""
    if cfg.engine == "ray" and cfg.knn_attributes > 0:
        raise ConfigError("params.yaml: `discover.knn_attributes` applies to `discover.engine: local`; set it to 0 for `engine: ray`")


def _save(save, obj, path: Path) -> None:
    """torch.save, whose failed write (a full disk) is a RuntimeError without errno: as the
    OSError the stage reports in one line (full disk), or one line naming the file."""
    try:
        save(obj, path)
    except RuntimeError as exc:
        if "PytorchStreamWriter" not in str(exc) and "write" not in str(exc):
            raise
        if shutil.disk_usage(path.parent).free < FULL_DISK_BYTES:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
        raise ModelError(f"{path}: cannot write the discover checkpoint ({str(exc).splitlines()[-1].strip()}). "
                         "Check the disk, then run again.") from None


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
