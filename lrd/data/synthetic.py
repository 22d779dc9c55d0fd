"""A tiny generated dataset and the settings that train on it in seconds: the one-minute demo
(`make demo`) and the tests run the real pipeline on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

GENRES = ["Action", "Comedy", "Drama", "Horror", "Sci-Fi"]


def write_recbole(folder: Path, n_users: int = 40, n_items: int = 30, per_user: int = 12, seed: int = 0, kg: bool = True) -> Path:
    """A small RecBole atomic dataset with genres, years, directors and a sequel chain.

    Every user has `per_user` interactions with distinct items and increasing timestamps;
    items 1..n_items, users 1..n_users (raw ids as strings of those numbers).
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(1, n_users + 1):
        items = rng.choice(np.arange(1, n_items + 1), size=per_user, replace=False)
        times = 880_000_000 + np.sort(rng.choice(10_000_000, size=per_user, replace=False))
        rows += [f"{u}\t{i}\t{rng.integers(1, 6)}\t{t}" for i, t in zip(items, times)]
    (folder / "tiny.inter").write_text("\n".join(rows) + "\n")
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    for i in range(1, n_items + 1):
        genres = " ".join(sorted({GENRES[i % 5], GENRES[(i * 7) % 5]}))
        items.append(f"{i}\tMovie number {i}\t{1930 + (i * 3) % 70}\t{genres}")
    (folder / "tiny.item").write_text("\n".join(items) + "\n")
    if kg:
        link = ["item_id:token\tentity_id:token"] + [f"{i}\tm.film{i}" for i in range(1, n_items + 1)]
        (folder / "tiny.link").write_text("\n".join(link) + "\n")
        triples = ["head_id:token\trelation_id:token\ttail_id:token"]
        triples += [f"m.film{i}\tfilm.film.directed_by\tm.person{i % 6}" for i in range(1, n_items + 1)]
        triples += [f"m.film{i}\tfilm.film.sequel\tm.film{i + 1}" for i in (1, 2, 10)]
        triples += ["m.film3\tfilm.film.sequel\tm.unknownfilm"]
        (folder / "tiny.kg").write_text("\n".join(triples) + "\n")
    return folder


def tiny_params(raw: Path, **overrides) -> dict:
    """A params dict for the tiny dataset; `overrides` replace whole top-level groups."""
    params = {
        "seed": 7,
        "datasets": {"tiny": {"format": "recbole", "source": {"kind": "path", "path": str(raw)}}},
        "ingest": {"min_core": 2, "n_negatives": 5, "max_items_per_value": 50,
                   "kg_relations": {"film.film.directed_by": "director", "film.film.sequel": "sequel"}},
        "embed": {"batch_size": 16},
        "dim": 16,
        "history_max": 5,
        "discover": {"latent_types": 3, "max_epochs": 3, "batch_size": 64, "knn": 3},
        "models": {
            "sasrec": {"arch": "sasrec", "lr": 1.0e-3, "layers": 1, "heads": 1},
            "rcf": {"arch": "rcf", "lr": 1.0e-3},
            "rcf_lrd": {"arch": "rcf", "lr": 1.0e-3, "lrd": True},
            "kda": {"arch": "kda", "lr": 1.0e-3},
            "kda_lrd": {"arch": "kda", "lr": 1.0e-3, "lrd": True},
            "kda_static": {"arch": "kda", "lr": 1.0e-3, "static_latent": True},
        },
        "train": {
            "models": ["sasrec", "kda"],
            "lrd_models": ["kda_lrd"],
            "static_models": [],
            "ablation_models": [],
            "seeds": [1],
            "layers": 1,
            "heads": 2,
            "batch_size": 64,
            "max_epochs": 2,
            "stopping": "patience",
            "patience": 1,
            "precision": "fp32",
            "threads": 1,
            "compile": "none",  # compiling costs more than these tiny runs; tests/test_fast_paths.py checks it
        },
    }
    params.update(overrides)
    return params


def pipeline_params(repo: dict, raw: Path) -> dict:
    """The repository's params (`repo`) with the tiny dataset and tiny models: what a DVC run of
    the real pipeline needs (DVC wants every param a stage lists to be in the file)."""
    tiny = tiny_params(raw)
    merged = {**repo, **{k: v for k, v in tiny.items() if not isinstance(v, dict)}, "datasets": tiny["datasets"], "models": tiny["models"]}
    for section in ("ingest", "embed", "discover", "train"):
        merged[section] = {**repo[section], **tiny[section]}
    return merged
