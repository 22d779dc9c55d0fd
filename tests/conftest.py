"""Shared fixtures: tiny datasets written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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


def run_upstream(root: Path, params: dict) -> None:
    """Copy the tiny dataset into `root` and run ingest, embed and discover there (stages write
    below the working directory)."""
    import os
    import shutil

    from lrd.paths import Paths
    from stages import discover, embed, ingest

    cwd = Path.cwd()
    try:
        os.chdir(root)
        shutil.copytree(params["datasets"]["tiny"]["source"]["path"], Paths("tiny").raw)
        for stage in (ingest, embed, discover):
            stage.run(params, "tiny")
    finally:
        os.chdir(cwd)


def upstream_workspace(tmp_path_factory, name: str, **discover) -> tuple[Path, dict]:
    """A new folder where ingest, embed and discover have run on the tiny dataset (`discover`:
    settings over tiny_params'), and its params."""
    root = tmp_path_factory.mktemp(name)
    params = tiny_params(write_recbole(root / "source"))
    params["discover"].update(discover)
    run_upstream(root, params)
    return root, params


@pytest.fixture
def recbole_dir(tmp_path: Path) -> Path:
    return write_recbole(tmp_path / "raw")


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
            "seeds": [1],
            "layers": 1,
            "heads": 2,
            "batch_size": 64,
            "max_epochs": 2,
            "stopping": "patience",
            "patience": 1,
            "precision": "fp32",
            "threads": 1,
        },
    }
    params.update(overrides)
    return params


def make_tiny_llama(folder: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A random 2-layer Llama with its own small BPE tokenizer, saved like a hub model."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

    corpus = ["Toy Story (1995). Genres: Animation, Comedy", "GoldenEye (1995). Genres: Action, Thriller",
              "Heat (1995). Genres: Crime, Drama", "a movie about space and robots", "the quick brown fox"] * 4
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<pad>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=fast.vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128)
    folder.mkdir(parents=True, exist_ok=True)
    LlamaModel(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("llama") / "tiny-llama")


def pipeline_params(raw: Path) -> dict:
    """The repository's params.yaml with the tiny dataset and tiny models: what a DVC run of the
    real pipeline needs (DVC wants every param a stage lists to be in the file)."""
    import yaml

    repo = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    tiny = tiny_params(raw)
    merged = {**repo, **{k: v for k, v in tiny.items() if not isinstance(v, dict)}, "datasets": tiny["datasets"], "models": tiny["models"]}
    for section in ("ingest", "embed", "discover", "train"):
        merged[section] = {**repo[section], **tiny[section]}
    return merged
