"""Sequential recommenders with one interface: `scores(batch)` (B x C) and `losses(batch)`.

- relational.RelationalRecommender: RCF (temporal=False) and KDA (temporal=True), each
  optionally with Latent Relation Discovery (lrd.LatentRelationDiscovery) trained jointly.
- sasrec.SASRec: a non-relational baseline.
"""
