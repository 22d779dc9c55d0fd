"""`embed` in params.yaml: the item encoder (or where vectors come from) and the FAISS index."""

from __future__ import annotations

import dataclasses
import re
import typing

from lrd.config.base import build, param
from lrd.errors import ConfigError

IndexType = typing.Literal["auto", "flat", "hnsw", "ivfpq", "ivf_ondisk"]
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclasses.dataclass(frozen=True)
class IndexConfig:
    type: IndexType = "auto"  # auto: flat below 200k items, HNSW below 5M, IVF-PQ beyond; ivf_ondisk only when asked
    hnsw_m: int = param(32, ge=2, le=512)
    ef_construction: int = param(80, ge=1)
    ef_search: int = param(128, ge=1)
    nlist: int | None = param(None, ge=1)  # IVF lists; default ~4 * sqrt(n)
    pq_m: int | None = param(None, ge=1)  # PQ sub-quantisers; default dim / 8 (must divide dim)
    nprobe: int = param(32, ge=1)
    refine: int = param(4, ge=0)  # IVF-PQ: re-rank k * refine candidates exactly (0 = off)
    # ivf_ondisk: IVF-Flat whose lists live in index.ivfdata beside index.faiss (memory-mapped, so
    # they need not fit in RAM), filled in `shards` parts that each need RAM for their own rows
    # only; null: one shard per million items.
    shards: int | None = param(None, ge=1)
    # Build (and search) on a GPU when faiss has GPU support and sees one; the saved index is a
    # CPU index either way, so the store opens anywhere. gpu without one falls back, with a warning.
    device: typing.Literal["auto", "cpu", "gpu"] = "auto"

    def validate(self) -> None:
        if self.shards is not None and self.type != "ivf_ondisk":
            raise ConfigError(f"params.yaml: `embed.index.shards` is {self.shards}, but shards apply to "
                              f"`embed.index.type: ivf_ondisk` only (type is {self.type}); remove it or set the type")

    def resolve(self, n: int) -> str:
        if self.type != "auto":
            return self.type
        return "flat" if n < 200_000 else "hnsw" if n < 5_000_000 else "ivfpq"


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    # sentence-transformers and hf-causal encode locally; openai asks an OpenAI-compatible
    # embeddings endpoint (OpenAI, vLLM, TEI, Ollama); file reads vectors computed elsewhere.
    backend: typing.Literal["sentence-transformers", "hf-causal", "openai", "file"] = "sentence-transformers"
    model: str = "all-MiniLM-L6-v2"
    # What the LLM reads, from the items table's columns (see lrd.data.text); "{text}" is the
    # description ingest wrote. Changing it re-runs embed and what follows, not ingest.
    text_template: str = "{text}"
    pooling: typing.Literal["mean", "last"] = "mean"  # hf-causal only; ST models bring their own
    instruction: str = ""  # prepended to every item text (instruction-tuned embedders)
    max_length: int = param(128, ge=1)
    normalize: bool = True  # unit vectors: inner product = cosine
    batch_size: int = param(64, ge=1)
    device: str = "auto"  # auto | cpu | cuda | cuda:1 | mps
    devices: tuple[str, ...] | None = None  # several devices at once, e.g. [cuda:0, cuda:1]
    dtype: typing.Literal["auto", "float32", "float16", "bfloat16"] = "auto"  # auto: fp32 on CPU, bf16/fp16 on GPU
    # local: this process on `device(s)`; ray: a Ray Data job on the cluster at RAY_ADDRESS, or on a
    # local one when it is unset (pip install -e '.[scale]'); the vectors and the store are the same.
    engine: typing.Literal["local", "ray"] = "local"
    ray_workers: int | None = param(None, ge=1)  # encoder actors; null: one per GPU of the cluster, else one per CPU
    # openai: the endpoint, and the NAME of the environment variable holding the key (the key
    # itself never goes into params.yaml, logs or the cache identity; null sends none)
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    concurrency: int = param(8, ge=1)  # requests in flight
    max_retries: int = param(6, ge=0)  # on 429, 5xx, timeouts (with exponential backoff)
    timeout_s: float = param(60.0, gt=0)
    max_requests: int | None = param(None, ge=1)  # budget: the stage stops before spending more
    max_tokens: int | None = param(None, ge=1)
    encoding_format: typing.Literal["base64", "float"] = "base64"
    # file: a Parquet (id, vector), a .npy matrix with its id list, or the reference's raw <DS>.feat.<name>
    path: str | None = None
    vector_dim: int | None = param(None, ge=1)  # the raw file's dimension (it has no header)
    ids: typing.Literal["auto", "raw", "item"] = "auto"  # the file's ids: raw item ids or integer item ids
    feat_dtype: typing.Literal["float64", "float32"] = "float64"  # the raw file's numbers
    index: IndexConfig = IndexConfig()

    def validate(self) -> None:
        for where, device in [("embed.device", self.device)] + [(f"embed.devices[{i}]", d) for i, d in enumerate(self.devices or ())]:
            if not _DEVICE.fullmatch(device) or (where != "embed.device" and device == "auto"):
                raise ConfigError(f"params.yaml: `{where}` is {device!r}; use auto, cpu, mps, cuda or cuda:<n>")
        if self.backend == "openai" and not re.match(r"https?://", self.base_url or ""):
            raise ConfigError(f"params.yaml: `embed.base_url` is {self.base_url!r}; the openai backend needs the endpoint, "
                              "e.g. https://api.openai.com/v1 or http://localhost:8000/v1")
        if self.backend == "file" and not self.path:
            raise ConfigError("params.yaml: `embed.path` is required for the file backend: the file holding the item vectors")
        if self.engine == "ray" and (self.backend in ("openai", "file") or self.devices):
            what = f"the {self.backend} backend" if self.backend in ("openai", "file") else "`embed.devices` (this machine's devices)"
            raise ConfigError(f"params.yaml: `embed.engine: ray` encodes with sentence-transformers or hf-causal models on the "
                              f"cluster; it does not apply to {what}: set `embed.engine: local`")

    @classmethod
    def from_params(cls, params: dict) -> "EmbedConfig":
        return build(cls, params.get("embed"), "embed")
