"""Shared fixtures: tiny datasets written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrd.data import synthetic
from lrd.data.synthetic import GENRES, tiny_params, write_recbole  # noqa: F401 (the tests import them from here)


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
    """The repository's params.yaml with the tiny dataset and tiny models (lrd.data.synthetic)."""
    import yaml

    return synthetic.pipeline_params(yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text()), raw)
