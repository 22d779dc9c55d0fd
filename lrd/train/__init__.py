"""Training and evaluation of the sequential recommenders."""
