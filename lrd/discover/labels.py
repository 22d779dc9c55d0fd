"""Label item pairs with their most probable latent relation type and write the triplet table.

One writer for discover's table and for the relations after joint training: the same schema,
streamed one row group at a time, so memory does not grow with the number of pairs.
"""

from __future__ import annotations

import logging

from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lrd import schemas
from lrd.errors import DataError
from lrd.graph import RelationGraph, latent_names
from lrd.io import atomic_path
from lrd.models.lrd import LatentRelationDiscovery
from lrd.discover.strength import StrengthScale, pair_strength, strength_scale
from lrd.paths import Paths
from lrd.train.checkpoint import load_weights

# (keys, heads, tails, latent index, probability, entropy, strength) of one chunk, for a readout
Observer = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]

# A labelled chunk: the triplet table's columns, then what a readout needs beside them.
LABELLED = pa.schema(list(schemas.LATENT_RELATIONS) + [pa.field("latent", pa.int16()), pa.field("entropy", pa.float32())])

# The triplet table as written: schemas.LATENT_RELATIONS plus each pair's strength (lrd.discover.strength).
TRIPLETS = schemas.LATENT_RELATIONS.append(pa.field("strength", pa.float32(), nullable=False))


def pair_tables(lrd: LatentRelationDiscovery) -> tuple[torch.Tensor, ...]:
    """The module's per-item halves of q (LatentRelationDiscovery.pair_tables), computed once for every chunk."""
    lrd.eval()
    with torch.no_grad():
        return tuple(t.detach().float().cpu() for t in lrd.pair_tables())


def label_chunk(keys: np.ndarray, source: pa.Array, base: int, tables, latent: slice, latent_ids: np.ndarray) -> pa.Table:
    """Label pair keys head * base + tail with their most probable latent type (LABELLED rows)."""
    heads, tails = keys // base, keys % base
    idx, prob, entropy = (t.numpy() for t in LatentRelationDiscovery.label(torch.from_numpy(heads), torch.from_numpy(tails), tables, latent))
    return pa.table({"head": heads.astype(np.int32), "tail": tails.astype(np.int32), "relation": latent_ids[idx],
                     "probability": prob.astype(np.float32), "source": source, "latent": idx.astype(np.int16),
                     "entropy": entropy.astype(np.float32)}, schema=LABELLED)


def write_labelled(path: Path, labelled: Iterable[pa.Table], base: int, scale: StrengthScale, observe: Observer | None = None) -> int:
    """Stream labelled chunks (LABELLED tables) into the triplet table (TRIPLETS) at `path`, each
    its own row group(s), with each pair's strength under `scale`, feeding `observe` on the way.
    Returns the row count."""
    rows = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, TRIPLETS, compression="zstd") as writer:
        for chunk in labelled:
            heads, tails = (chunk.column(c).to_numpy().astype(np.int64) for c in ("head", "tail"))
            latent, prob = chunk.column("latent").to_numpy(), chunk.column("probability").to_numpy()
            strength = pair_strength(scale, heads, tails, latent)
            if observe:
                observe(heads * base + tails, heads, tails, latent, prob, chunk.column("entropy").to_numpy(), strength)
            triplets = chunk.select(schemas.LATENT_RELATIONS.names).append_column("strength", pa.array(strength, pa.float32()))
            writer.write_table(triplets if triplets.schema.equals(TRIPLETS) else triplets.cast(TRIPLETS))
            rows += chunk.num_rows
    return rows


def decoder_scale(lrd: LatentRelationDiscovery, graph: RelationGraph, entities: torch.Tensor, relations: torch.Tensor) -> StrengthScale:
    """The strength scale of a model whose decoder has these item (entity) and relation embeddings."""
    return strength_scale(lrd.text.cpu().numpy(), entities.detach().float().cpu().numpy(),
                          relations.detach().float().cpu().numpy()[graph.latent])


def write_labelled_pairs(
    path: Path,
    lrd: LatentRelationDiscovery,
    graph: RelationGraph,
    chunks: Iterable[tuple[np.ndarray, pa.Array]],
    scale: StrengthScale,
    observe: Observer | None = None,
) -> int:
    """Label each chunk of (pair keys head * (n_items + 1) + tail, source) and write it. Returns the row count."""
    base, tables = graph.n_items + 1, pair_tables(lrd)
    latent_ids = np.asarray(graph.global_ids)[graph.latent].astype(np.int16)
    labelled = (label_chunk(keys, source, base, tables, graph.latent, latent_ids) for keys, source in chunks)
    return write_labelled(path, labelled, base, scale, observe)


def stored_pairs(path: Path, n_items: int, chunk: int = 1 << 20) -> Iterable[tuple[np.ndarray, pa.Array]]:
    """The pairs (and their sources) of a written triplet table, to label them again."""
    for batch in pq.ParquetFile(path).iter_batches(columns=["head", "tail", "source"], batch_size=chunk):
        heads = batch.column("head").to_numpy().astype(np.int64)
        yield heads * (n_items + 1) + batch.column("tail").to_numpy(), batch.column("source")


def relabel_pairs(latent: Path, out: Path, state: dict, text: torch.Tensor, graph: RelationGraph, dim: int, alpha: float,
                  drop_virtual: bool) -> int:
    """The pairs of a triplet table labelled again by the LRD module of a jointly trained model's weights."""
    lrd = LatentRelationDiscovery(text, dim, graph.n_relations, alpha, drop_virtual)
    lrd.load_state_dict({k.removeprefix("lrd."): v for k, v in state.items() if k.startswith("lrd.")})
    # The strength under the joint model's own decoder: the recommender's item and relation embeddings.
    scale = decoder_scale(lrd, graph, state["entities.weight"], state["relations.weight"])
    return write_labelled_pairs(out, lrd, graph, stored_pairs(latent, graph.n_items), scale)


def _write_empty(path: Path) -> None:
    """A triplet table with no pair: no +LRD run to relabel with (yet)."""
    with atomic_path(path) as tmp:
        pq.write_table(TRIPLETS.empty_table(), tmp)


def relabel_best_run(paths: Paths, runs: list[tuple[float, str, int]], tables, text: np.ndarray | None, kinds: tuple[str, ...],
                     latent_types: int, alpha: float, drop_virtual: bool, dim: int) -> tuple[str, int] | None:
    """discover's pairs labelled again by the +LRD run with the best dev NDCG@5, from `runs` of
    (dev NDCG@5, model, seed); an empty table when there is none. Returns the run used."""
    if not runs or text is None or not paths.latent.exists():
        _write_empty(paths.latent_joint)
        return None
    _, name, seed = max(runs)
    try:
        pq.ParquetFile(paths.latent)  # a truncated file fails here, at its footer
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{paths.latent} is not a readable Parquet file ({str(exc)[:80]}): re-run "
                        f"`dvc repro -f discover@{paths.dataset}`") from None
    weights = paths.run_relations(name, seed)
    if not weights.exists():
        # Results of a run older than relations.pt: the tables and charts are still made; only
        # this relabelling waits for a re-run of the cell.
        logging.getLogger(__name__).warning(
            "%s does not exist (a run from before the cells wrote it: re-run the cell): discover's pairs are not "
            "labelled again by the joint model; %s left empty", weights, paths.latent_joint)
        _write_empty(paths.latent_joint)
        return None
    graph = RelationGraph.from_tables(tables.relation_types, tables.relations, tables.n_items, kinds=kinds, latent=latent_names(latent_types))
    state = load_weights(weights, f"re-run the cell {paths.dataset}-{name}-{seed} (`lrd matrix status` names its stage; `dvc repro -f <stage>`)")
    relabel_pairs(paths.latent, paths.latent_joint, state, torch.from_numpy(text), graph, dim, alpha, drop_virtual)
    return name, seed
