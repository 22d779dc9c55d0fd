"""Model name in params.yaml -> a ready model, its relation graph and training switches."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch import nn

from lrd.config import DiscoverConfig, ModelSpec, TrainConfig
from lrd.discover import latent_names
from lrd.errors import ConfigError, MissingUpstreamError
from lrd.graph import RelationGraph
from lrd.models.lrd import LatentRelationDiscovery
from lrd.models.relational import RelationalRecommender
from lrd.models.sasrec import SASRec
from lrd.train.data import DatasetTables

log = logging.getLogger(__name__)

DISCOVER_CHECKPOINT = Path("models/discover/checkpoint.pt")


def relation_graph(spec: ModelSpec, cfg: TrainConfig, dcfg: DiscoverConfig, tables: DatasetTables, latent_table: Path) -> RelationGraph | None:
    if spec.arch == "sasrec":
        return None
    latent = latent_names(dcfg.latent_types) if (spec.lrd or spec.static_latent) else None
    static = None
    if spec.static_latent:
        if not latent_table.exists():
            raise MissingUpstreamError(f"{latent_table} does not exist: run `dvc repro discover` first")
        table = pq.read_table(latent_table, columns=["head", "tail", "relation", "probability"])
        static = table.filter(pc.greater_equal(table.column("probability"), dcfg.min_probability))
        log.info("static variant: %d confident latent pairs (probability >= %.2f) as fixed relations", static.num_rows, dcfg.min_probability)
    return RelationGraph.from_tables(
        tables.relation_types, tables.relations, tables.n_items, kinds=cfg.model_relations, latent=latent, static=static
    )


def build_model(
    spec: ModelSpec, cfg: TrainConfig, dcfg: DiscoverConfig, tables: DatasetTables, graph: RelationGraph | None, text: torch.Tensor | None
) -> nn.Module:
    if spec.arch == "sasrec":
        return SASRec(tables.n_items, cfg.history_max, cfg.dim, spec.layers or 2, spec.heads or 2, spec.dropout)
    kg_weight = cfg.kg_weight if cfg.kg_weight is not None else graph.n_triples / tables.interactions.num_rows
    lrd = None
    if spec.lrd:
        lrd = LatentRelationDiscovery(text, cfg.dim, graph.n_relations, dcfg.alpha, dcfg.drop_virtual, objective="reference")
    return RelationalRecommender(
        graph, tables.n_users, d=cfg.dim, layers=spec.layers or cfg.layers, heads=spec.heads or cfg.heads,
        temporal=spec.arch == "kda", n_dft=cfg.n_dft, kg_weight=kg_weight, lrd=lrd, lrd_weight=cfg.lrd_weight,
    )


def init_from_discover(model: RelationalRecommender, graph: RelationGraph, cfg: TrainConfig, dcfg: DiscoverConfig, path: Path = DISCOVER_CHECKPOINT) -> None:
    """Start the +LRD model from the standalone discovery: item/value entity embeddings,
    relation embeddings and the LRD extractor. A checkpoint made under other settings is
    refused, never silently reused."""
    if not path.exists():
        raise MissingUpstreamError(f"{path} does not exist: run `dvc repro discover` (or set train.init_from_discover: false)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    meta = ckpt["meta"]
    expected = {"relations": graph.names, "n_entities": graph.n_entities, "dim": cfg.dim, "latent_types": dcfg.latent_types}
    stale = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
    if stale:
        detail = "; ".join(f"{k}: checkpoint {a!r:.60} vs now {b!r:.60}" for k, (a, b) in stale.items())
        raise ConfigError(f"{path} was made with other settings ({detail}): run `dvc repro discover` first")
    state = ckpt["state"]
    with torch.no_grad():
        model.entities.weight.copy_(state["entities.weight"])
        model.relations.weight.copy_(state["relations.weight"])
        for name in ("project.weight", "project.bias", "extract.weight", "extract.bias"):
            dict(model.lrd.named_parameters())[name].copy_(state[f"lrd.{name}"])


def parameter_count(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def relabel_pairs(src: Path, dst: Path, lrd: LatentRelationDiscovery, graph: RelationGraph) -> int:
    """Re-label discover's candidate pairs with a jointly trained LRD module (same schema)."""
    from lrd import schemas
    from lrd.discover import label_pairs
    from lrd.io import atomic_path

    lrd.eval()
    with torch.no_grad():
        tables = tuple(t.detach().float() for t in lrd.pair_tables())
    rows = 0
    source = pq.ParquetFile(src)
    with atomic_path(dst) as tmp, pq.ParquetWriter(tmp, schemas.LATENT_RELATIONS, compression="zstd") as writer:
        for batch in source.iter_batches(columns=["head", "tail", "source"], batch_size=1 << 20):
            h = batch.column("head").to_numpy().astype(np.int64)
            t = batch.column("tail").to_numpy().astype(np.int64)
            rel, prob, _ = label_pairs(lrd, graph, h, t, tables)
            writer.write_table(pa.table(
                {"head": h.astype(np.int32), "tail": t.astype(np.int32), "relation": rel, "probability": prob, "source": batch.column("source")},
                schema=schemas.LATENT_RELATIONS,
            ))
            rows += len(h)
    return rows
