"""LRD: Latent Relation Discovery (SIGIR 2024) for relation-aware sequential recommendation."""

__version__ = "0.1.0"
