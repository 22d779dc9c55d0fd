"""Where a jointly trained +LRD model's relation extractor puts discover's candidate pairs.

q(r | h, t) spans every relation type, the virtual and predefined ones included (as in the
reference code). latent_joint.parquet keeps only the most probable *latent* type of each pair,
which hides how much of q the latent types get at all; this readout shows it, per run: each
type's mean q over the pairs, the latent types' share, and how many latent types keep pairs
(are the most probable type overall for at least KEEP_SHARE of them).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from lrd.graph import RelationGraph, latent_names
from lrd.models.lrd import LatentRelationDiscovery
from lrd.train.checkpoint import load_weights

KEEP_SHARE = 0.01  # a latent type "keeps" pairs when it is the argmax of at least 1% of them


@dataclasses.dataclass(frozen=True)
class JointReadout:
    model: str
    seed: int
    latent_types: int
    latent_mass: float  # mean over pairs of the latent types' total q
    kept: int  # latent types that are the most probable type of >= KEEP_SHARE of the pairs
    top_latent_share: float  # share of the pairs in the largest latent type (argmax among the latent types)
    mass: dict[str, float]  # type name -> mean q


def extractor(state: dict, text: torch.Tensor) -> LatentRelationDiscovery:
    """The relation extractor of a jointly trained model's weights (their `lrd.*` entries)."""
    lrd = LatentRelationDiscovery(text, state["lrd.project.weight"].shape[0], state["lrd.extract.weight"].shape[0])
    lrd.load_state_dict({k.removeprefix("lrd."): v for k, v in state.items() if k.startswith("lrd.")})
    return lrd


def read_joint(state: dict, text: torch.Tensor, graph: RelationGraph, heads: np.ndarray, tails: np.ndarray,
               chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean q per type, and the counts of pairs per argmax type overall and among the latent types."""
    a, b, c = (x.detach() for x in extractor(state, text).pair_tables())
    mass, overall, latent = np.zeros(graph.n_relations), np.zeros(graph.n_relations), np.zeros(graph.latent.stop - graph.latent.start)
    with torch.no_grad():
        for i in range(0, len(heads), chunk):
            h, t = torch.from_numpy(heads[i:i + chunk]), torch.from_numpy(tails[i:i + chunk])
            q = torch.softmax(a[h] + b[t] + c, dim=-1)
            mass += q.sum(0).double().numpy()
            overall += np.bincount(q.argmax(1).numpy(), minlength=graph.n_relations)
            latent += np.bincount(q[:, graph.latent].argmax(1).numpy(), minlength=len(latent))
    return mass / max(len(heads), 1), overall, latent


def joint_readouts(runs: list[tuple[str, int, Path]], latent_table: Path, tables, text: np.ndarray, kinds: tuple[str, ...]) -> list[JointReadout]:
    """One readout per (model, seed, best weights) of `runs` whose weights exist; K follows each run's
    own extractor (the K ablations differ)."""
    predefined = RelationGraph.from_tables(tables.relation_types, tables.relations, tables.n_items, kinds=kinds).n_relations
    pairs = pq.read_table(latent_table, columns=["head", "tail"])
    heads, tails = (pairs.column(c).to_numpy().astype(np.int64) for c in ("head", "tail"))
    vectors, out = torch.from_numpy(text), []
    for model, seed, weights in runs:
        if not weights.exists():
            continue
        state = load_weights(weights, f"re-run the cell {model} {seed}")
        k = state["lrd.extract.weight"].shape[0] - predefined
        graph = RelationGraph.from_tables(tables.relation_types, tables.relations, tables.n_items, kinds=kinds, latent=latent_names(k))
        mass, overall, latent = read_joint(state, vectors, graph, heads, tails)
        n = max(len(heads), 1)
        out.append(JointReadout(model, seed, k, float(mass[graph.latent].sum()), int((overall[graph.latent] >= KEEP_SHARE * n).sum()),
                                float(latent.max() / n), dict(zip(graph.names, mass.round(4).tolist()))))
    return out


def joint_markdown(readouts: list[JointReadout]) -> str:
    """The section of ablations.md on the joint models' relations."""
    if not readouts:
        return ""
    predefined = [n for n in readouts[0].mass if not n.startswith("latent_")]
    lines = ["", "## The joint model's relations", "",
             "Each +LRD run's relation extractor on discover's candidate pairs (`lrd/discover/joint.py`): q spans every "
             "relation type, the predefined ones included. Latent q = the latent types' mean share of q; kept = latent types "
             f"that are the most probable type overall for >= {KEEP_SHARE:.0%} of the pairs; largest = the share of pairs whose "
             "most probable latent type is the most common one (what latent_joint.parquet and `lrd relations --joint` show).", "",
             "| model | seed | K | latent q | kept | largest | " + " | ".join(f"q {n}" for n in predefined) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(predefined)]
    for r in readouts:
        lines.append(f"| {r.model} | {r.seed} | {r.latent_types} | {r.latent_mass:.3f} | {r.kept} | {r.top_latent_share:.0%} | "
                     + " | ".join(f"{r.mass.get(n, float('nan')):.3f}" for n in predefined) + " |")
    return "\n".join(lines) + "\n"
