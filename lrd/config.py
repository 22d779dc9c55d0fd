"""Typed configuration: one frozen dataclass per stage, built from params.yaml.

Unknown keys and wrong types are reported with their dotted path in params.yaml, so a typo
fails loudly instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lrd.errors import ConfigError

T = TypeVar("T")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} not found: run from the repository root or pass --params")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path} must hold a mapping of stage names to settings")
    return params


def build(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass `cls` from a mapping, checking keys and (simple) types recursively."""
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"params.yaml: `{where}` must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"params.yaml: unknown key(s) {', '.join(f'`{where}.{k}`' for k in unknown)}; "
            f"valid keys: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"params.yaml: `{where}.{name}` is required")
            continue
        kwargs[name] = _coerce(data[name], hints[name], f"{where}.{name}")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check()
    return obj


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"params.yaml: bad value for `{where}`")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"params.yaml: `{where}` is {value!r}; choose one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"params.yaml: `{where}` must be a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"params.yaml: `{where}` must be a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_coerce(k, kt, where): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # YAML reads `1e-3` as a string
            return float(value)
        except ValueError:
            pass
    if isinstance(hint, type) and isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"params.yaml: `{where}` must be {getattr(hint, '__name__', hint)}, got {value!r}")


# --------------------------------------------------------------------------------------------
# dataset + download + ingest

SourceKind = typing.Literal["pypi-wheel", "url", "path"]
DatasetFormat = typing.Literal["recbole", "movielens", "amazon2014", "amazon2018", "rechorus"]


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    kind: SourceKind
    package: str | None = None  # pypi-wheel: requirement, e.g. recbole==1.2.1
    url: str | None = None  # url: where to fetch the file (zip, gz or plain)
    path: str | None = None  # path: a local file or folder
    sha256: str | None = None  # required for pypi-wheel and url; optional for path
    member: str | None = None  # folder inside an archive to extract (default: everything)

    def validate(self) -> None:
        need = {"pypi-wheel": "package", "url": "url", "path": "path"}[self.kind]
        if getattr(self, need) is None:
            raise ConfigError(f"params.yaml: `dataset.source.{need}` is required for kind {self.kind!r}")
        if self.kind != "path" and not self.sha256:
            raise ConfigError(
                f"params.yaml: `dataset.source.sha256` is required for kind {self.kind!r} "
                "(run `sha256sum` on a trusted copy of the file)"
            )


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    name: str
    format: DatasetFormat
    source: SourceConfig

    def validate(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"params.yaml: `dataset.name` {self.name!r} must be a plain folder name")

    @property
    def raw_dir(self) -> Path:
        return Path("data/raw") / self.name

    @property
    def processed_dir(self) -> Path:
        return Path("data/processed") / self.name


@dataclasses.dataclass(frozen=True)
class AttributeConfig:
    # Numeric columns (e.g. release year) are cut into buckets at these edges; values at or
    # beyond the last edge get a bucket each (the reference's yearly buckets from 1990 on).
    bucket_edges: tuple[float, ...] | None = None


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    seed: int
    min_core: int = 5
    n_negatives: int = 99
    text_template: str = "{title}"
    text_fallback: str = "title"  # what an item with empty text reads: "title" or "error"
    # Item columns that become attribute relations (null: the reader's defaults). A list
    # column gives one binary relation per value ("genres=Comedy"), a scalar column one relation
    # whose values are entities.
    attributes: dict[str, AttributeConfig] | None = None
    # Knowledge-graph relations (RecBole .kg) to keep, mapped to our names. A relation whose
    # tails are items gives item-item triples; any other gives "shares_<name>" pairs between
    # items with the same tail.
    kg_relations: dict[str, str] = dataclasses.field(default_factory=dict)
    max_items_per_value: int = 50
    # also_bought/also_viewed lists span all time and can point at future purchases; keep
    # them (comparable with published numbers) or drop them to rule out that leak.
    item_links: bool = True

    def validate(self) -> None:
        if self.min_core < 0:
            raise ConfigError("params.yaml: `ingest.min_core` must be >= 0")
        if self.n_negatives < 1:
            raise ConfigError("params.yaml: `ingest.n_negatives` must be >= 1")
        if self.text_fallback not in ("title", "error"):
            raise ConfigError("params.yaml: `ingest.text_fallback` must be 'title' or 'error'")
        if self.max_items_per_value < 2:
            raise ConfigError("params.yaml: `ingest.max_items_per_value` must be >= 2")

    @classmethod
    def from_params(cls, params: dict) -> "IngestConfig":
        return build(cls, {"seed": params.get("seed"), **(params.get("ingest") or {})}, "ingest")


def dataset_config(params: dict) -> DatasetConfig:
    return build(DatasetConfig, params.get("dataset"), "dataset")


# --------------------------------------------------------------------------------------------
# embed

IndexType = typing.Literal["auto", "flat", "hnsw", "ivfpq"]


@dataclasses.dataclass(frozen=True)
class IndexConfig:
    type: IndexType = "auto"  # auto: flat below 200k items, HNSW below 5M, IVF-PQ beyond
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    nlist: int | None = None  # IVF lists; default ~4 * sqrt(n)
    pq_m: int | None = None  # PQ sub-quantisers; default dim / 8 (must divide dim)
    nprobe: int = 32
    refine: int = 4  # IVF-PQ: re-rank k * refine candidates exactly (0 = off)

    def resolve(self, n: int) -> str:
        if self.type != "auto":
            return self.type
        return "flat" if n < 200_000 else "hnsw" if n < 5_000_000 else "ivfpq"


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    backend: typing.Literal["sentence-transformers", "hf-causal"] = "sentence-transformers"
    model: str = "all-MiniLM-L6-v2"
    # What the LLM reads, from the items table's columns (see lrd.data.text); "{text}" is the
    # description ingest wrote. Changing it re-runs embed and what follows, not ingest.
    text_template: str = "{text}"
    pooling: typing.Literal["mean", "last"] = "mean"  # hf-causal only; ST models bring their own
    instruction: str = ""  # prepended to every item text (instruction-tuned embedders)
    max_length: int = 128
    normalize: bool = True  # unit vectors: inner product = cosine
    batch_size: int = 64
    device: str = "auto"  # auto | cpu | cuda | cuda:1 | mps
    devices: tuple[str, ...] | None = None  # several devices at once, e.g. [cuda:0, cuda:1]
    dtype: typing.Literal["auto", "float32", "float16", "bfloat16"] = "auto"  # auto: fp32 on CPU, bf16/fp16 on GPU
    index: IndexConfig = IndexConfig()

    def validate(self) -> None:
        if self.max_length < 1 or self.batch_size < 1:
            raise ConfigError("params.yaml: `embed.max_length` and `embed.batch_size` must be positive")

    @classmethod
    def from_params(cls, params: dict) -> "EmbedConfig":
        return build(cls, params.get("embed"), "embed")


# --------------------------------------------------------------------------------------------
# discover + train


@dataclasses.dataclass(frozen=True)
class DiscoverConfig:
    seed: int
    dim: int = 64
    history_max: int = 20
    model_relations: tuple[str, ...] = ("attribute",)
    latent_types: int = 8  # K
    alpha: float = 0.1  # entropy weight (minimised: pushes q towards one type, as the reference)
    drop_virtual: bool = True  # type 0 = "no relation": left out of the reconstruction
    objective: typing.Literal["expectation", "reference"] = "expectation"  # see lrd.models.lrd
    kg_weight: float | None = None  # DistMult loss on predefined triples; null = |triples| / |interactions|
    lr: float = 3.0e-3
    l2: float = 1.0e-6
    batch_size: int = 256
    max_epochs: int = 30
    patience: int = 2
    min_delta: float = 0.002  # relative held-out loss improvement that counts
    holdout: float = 0.05  # share of training rows held out for early stopping
    knn: int = 10  # FAISS neighbours per item added as candidate pairs
    min_probability: float = 0.5  # "confident" latent relation, for the readout and the static model
    row_group_size: int = 1_000_000

    def validate(self) -> None:
        if self.latent_types < 2:
            raise ConfigError(f"params.yaml: `discover.latent_types` is {self.latent_types}; LRD needs K >= 2 latent types")
        if not 0 < self.holdout < 0.5:
            raise ConfigError("params.yaml: `discover.holdout` must be between 0 and 0.5")

    @classmethod
    def from_params(cls, params: dict) -> "DiscoverConfig":
        return build(cls, {**_shared(params), **(params.get("discover") or {})}, "discover")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    arch: typing.Literal["rcf", "kda", "sasrec"]
    lrd: bool = False  # train Latent Relation Discovery jointly (+LRD)
    static_latent: bool = False  # read discover's triplets as fixed extra relations
    lr: float = 1.0e-3
    layers: int | None = None  # default: train.layers (sasrec: 2)
    heads: int | None = None  # default: train.heads (sasrec: 2)
    dropout: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    seed: int
    models: dict[str, ModelSpec]
    seeds: tuple[int, ...] = (2019,)
    dim: int = 64
    history_max: int = 20
    model_relations: tuple[str, ...] = ("attribute",)
    layers: int = 5
    heads: int = 4
    n_dft: int = 64
    batch_size: int = 256
    eval_users: int = 64  # users scored at once in evaluation (x 100 candidates); bounds memory
    max_epochs: int = 200
    patience: int = 10  # stop when dev NDCG@5 has not improved for this many epochs
    l2: float = 1.0e-6
    kg_weight: float | None = None  # γ; null = |triples| / |interactions|
    lrd_weight: float = 10.0  # λ
    init_from_discover: bool = False  # +LRD models start from the discover checkpoint
    precision: typing.Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast where the CPU/GPU has it
    threads: int | None = None  # torch CPU threads (default: torch's choice)
    full_ranking: bool = False  # also rank every item (minus the user's earlier ones) at test time

    def validate(self) -> None:
        if not self.seeds:
            raise ConfigError("params.yaml: `train.seeds` must list at least one seed")

    def spec(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise ConfigError(f"unknown model {name!r}; params.yaml `models` defines: {', '.join(self.models)}")
        return self.models[name]

    @classmethod
    def from_params(cls, params: dict) -> "TrainConfig":
        train = dict(params.get("train") or {})
        train.pop("models", None)  # the list of models to run; DVC's foreach reads it
        return build(cls, {**_shared(params), **train, "models": params.get("models") or {}}, "train")


def _shared(params: dict) -> dict:
    """Top-level settings that several stages read (discover and train must agree on them)."""
    shared = {k: params[k] for k in ("seed", "dim", "history_max", "model_relations") if k in params}
    kinds = shared.get("model_relations", ())
    bad = [k for k in kinds if k not in ("item-item", "attribute")]
    if bad:
        raise ConfigError(f"params.yaml: `model_relations` may list item-item and attribute, not {', '.join(map(str, bad))}")
    return shared
