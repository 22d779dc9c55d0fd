"""Typed configuration, one module per stage group: base (reading and checking params.yaml,
the shared top-level settings), datasets, ingest, embed, train (discover, models, train).

Nothing is imported here, so that a stage depends only on the config modules it reads.
"""
