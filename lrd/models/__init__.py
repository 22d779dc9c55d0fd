"""Sequential recommenders behind one interface (base.Recommender), chosen by name.

- relational.RCF and relational.KDA, each optionally with Latent Relation Discovery
  (lrd.LatentRelationDiscovery) trained jointly;
- sasrec.SASRec: a non-relational baseline.
"""

from __future__ import annotations

from lrd.config.train import ModelConfig
from lrd.models.base import Catalog, Recommender
from lrd.models.relational import KDA, RCF
from lrd.models.sasrec import SASRec

ARCHITECTURES: dict[str, type[Recommender]] = {"sasrec": SASRec, "rcf": RCF, "kda": KDA}


def build_model(cfg: ModelConfig, catalog: Catalog) -> Recommender:
    return ARCHITECTURES[cfg.arch](cfg, catalog)


def parameter_count(model: Recommender) -> int:
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))
