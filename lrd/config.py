"""Typed configuration: one frozen dataclass per stage, built from params.yaml.

The dataclasses are the one place that holds defaults (params.yaml repeats them so that DVC
tracks them and `dvc exp run -S` can set them; a test keeps the two equal). Unknown keys,
wrong types and out-of-range numbers are reported with their dotted path in params.yaml and
the valid range, so a typo fails loudly instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lrd.errors import ConfigError
from lrd.paths import Paths

T = TypeVar("T")

# Top-level keys of params.yaml; anything else is a typo (`trian:`) and an error.
SECTIONS = ("seed", "datasets", "ingest", "embed", "dim", "history_max", "model_relations", "discover", "models", "train")


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
    check_sections(params, path)
    return params


def check_sections(params: dict, path: str | Path = "params.yaml") -> None:
    unknown = sorted(_printable(k) for k in params if k not in SECTIONS)
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(f'`{k}`' for k in unknown)}; valid keys: {', '.join(SECTIONS)}")


def param(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
          lt: float | None = None, factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with a valid range, checked by `build` (None values are not checked)."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    return dataclasses.field(default=default, default_factory=factory, metadata={"range": bounds})


_RANGE_TEXT = {"ge": ">= {}", "gt": "> {}", "le": "<= {}", "lt": "< {}"}
_RANGE_OK = {"ge": lambda v, b: v >= b, "gt": lambda v, b: v > b, "le": lambda v, b: v <= b, "lt": lambda v, b: v < b}


def _check_range(value: Any, bounds: dict, where: str) -> None:
    if value is None or not bounds:
        return
    for v in value if isinstance(value, tuple) else (value,):
        if not all(_RANGE_OK[k](v, b) for k, b in bounds.items()):
            valid = " and ".join(_RANGE_TEXT[k].format(b) for k, b in bounds.items())
            raise ConfigError(f"params.yaml: `{where}` is {v!r}; it must be {valid}")


def build(cls: type[T], data: Any, where: str, top_level: frozenset[str] = frozenset()) -> T:
    """Build dataclass `cls` from a mapping, checking keys, (simple) types and ranges recursively.

    Keys in `top_level` come from params.yaml's top level and are named without `where`.
    """
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"params.yaml: `{where}` must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(_printable(k) for k in data if k not in fields)
    if unknown:
        raise ConfigError(
            f"params.yaml: unknown key(s) {', '.join(f'`{where}.{k}`' for k in unknown)}; "
            f"valid keys: {', '.join(f for f in fields if f not in top_level)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        at = name if name in top_level else f"{where}.{name}"
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"params.yaml: `{at}` is required")
            continue
        kwargs[name] = _coerce(data[name], hints[name], at)
        _check_range(kwargs[name], f.metadata.get("range", {}), at)
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check()
    return obj


def _printable(key: Any) -> str:
    """A key as it reads on one line (a YAML key can hold a line break)."""
    return str(key).encode("unicode_escape").decode("ascii")


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
# settings several stages share (top level of params.yaml)

RelationKind = typing.Literal["item-item", "attribute"]


@dataclasses.dataclass(frozen=True)
class Shared:
    seed: int = param(2019, ge=0)
    dim: int = param(64, ge=1)
    history_max: int = param(20, ge=1)
    # Predefined relation kinds the models use; null: what the dataset's reader suggests.
    model_relations: tuple[RelationKind, ...] | None = None


SHARED_KEYS = frozenset(f.name for f in dataclasses.fields(Shared))


def _shared(params: dict) -> dict:
    """The top-level settings, checked once under their own names, as keyword arguments."""
    present = {k: params[k] for k in SHARED_KEYS if k in params}
    build(Shared, present, "", top_level=SHARED_KEYS)
    return present


def shared_config(params: dict) -> Shared:
    return build(Shared, _shared(params), "", top_level=SHARED_KEYS)


def _section(cls: type[T], params: dict, name: str, extra: dict | None = None) -> T:
    section = params.get(name)
    if section is not None and not isinstance(section, dict):
        raise ConfigError(f"params.yaml: `{name}` must be a mapping, got {section!r}")
    shared = {k: v for k, v in _shared(params).items() if k in {f.name for f in dataclasses.fields(cls)}}
    return build(cls, {**shared, **(section or {}), **(extra or {})}, name, top_level=SHARED_KEYS)


# --------------------------------------------------------------------------------------------
# dataset + download + ingest

SourceKind = typing.Literal["pypi-wheel", "url", "path"]
DatasetFormat = typing.Literal["recbole", "movielens", "amazon2014", "amazon2018", "rechorus"]
# What ingest checks in stored candidates (lrd.data.ingest.CANDIDATE_ISSUES).
CandidateIssue = typing.Literal["repeated_negatives", "target_in_negatives", "interacted_negatives", "several_rows_per_user"]


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
            raise ConfigError(f"params.yaml: `source.{need}` of the dataset is required for kind {self.kind!r}")
        if self.kind != "path" and not self.sha256:
            raise ConfigError(
                f"params.yaml: `source.sha256` of the dataset is required for kind {self.kind!r} "
                "(run `sha256sum` on a trusted copy of the file)"
            )


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """One entry of params.yaml `datasets`: its name is the key, a folder name under data/."""

    name: str
    format: DatasetFormat
    source: SourceConfig
    ingest: dict[str, Any] | None = None  # this dataset's `ingest` settings over the common ones

    def validate(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name or ""):
            raise ConfigError(f"params.yaml: dataset name {self.name!r} must be a plain folder name (letters, digits, . _ -)")

    @property
    def paths(self) -> Paths:
        return Paths(self.name)


@dataclasses.dataclass(frozen=True)
class AttributeConfig:
    # Numeric columns (e.g. release year) are cut into buckets at these edges; values at or
    # beyond the last edge get a bucket each (the reference's yearly buckets from 1990 on).
    bucket_edges: tuple[float, ...] | None = param(None, ge=-1e15, le=1e15)

    def validate(self) -> None:
        edges = self.bucket_edges or ()
        if any(b <= a for a, b in zip(edges, edges[1:])):
            raise ConfigError(f"params.yaml: `bucket_edges` {list(edges)} must be strictly increasing")


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    # Every format-specific setting is null by default: the reader's default for its format
    # (README, "Other datasets"); a value in params.yaml overrides it.
    seed: int = param(2019, ge=0)
    min_core: int = param(5, ge=0)
    # Negatives per dev/test row; null: the count a pre-split dataset stores, else 99 (sampled).
    n_negatives: int | None = param(None, ge=1, le=100_000)
    text_template: str | None = None  # the item description (lrd.data.text); null: the format's
    text_fallback: typing.Literal["title", "error"] = "title"  # what an item with empty text reads
    # Item columns that become attribute relations (null: the reader's defaults). A list
    # column gives one binary relation per value ("genres=Comedy"), a scalar column one relation
    # whose values are entities.
    attributes: dict[str, AttributeConfig] | None = None
    # Knowledge-graph relations (RecBole .kg) to keep, mapped to our names (null: the Freebase
    # film relations the files have; {}: none). A relation whose tails are items gives
    # item-item triples; any other gives "shares_<name>" pairs between items with the same tail.
    kg_relations: dict[str, str] | None = None
    max_items_per_value: int = param(50, ge=2)
    # also_bought/also_viewed lists span all time and can point at future purchases; keep
    # them (comparable with published numbers) or drop them to rule out that leak.
    item_links: bool = True
    # Stored candidates (ReChorus neg_items) with these issues are kept and counted in
    # stats.json; any other issue found is an error. The reference's Amazon files repeat
    # negatives in most rows, hence the default.
    accept_candidates: tuple[CandidateIssue, ...] = ("repeated_negatives",)

    def validate(self) -> None:
        if self.text_template is not None and not re.search(r"\{[A-Za-z_][A-Za-z0-9_]*\}", self.text_template):
            raise ConfigError(f"params.yaml: `ingest.text_template` {self.text_template!r} must use at least one {{column}}, e.g. \"{{title}}\"")
        for where, names in (("ingest.attributes", self.attributes or {}), ("ingest.kg_relations", self.kg_relations or {})):
            blank = [k for k in names if not str(k).strip()]
            if blank:
                raise ConfigError(f"params.yaml: `{where}` has an empty name; use the column or relation name")
        ours = [v for v in (self.kg_relations or {}).values() if not re.fullmatch(r"[A-Za-z0-9_.-]+", v)]
        if ours:
            raise ConfigError(f"params.yaml: `ingest.kg_relations` maps to {ours[0]!r}; use a plain name (letters, digits, _ . -)")

    @classmethod
    def from_params(cls, params: dict, dataset: "DatasetConfig | None" = None) -> "IngestConfig":
        return _section(cls, params, "ingest", extra=dataset.ingest if dataset else None)


def dataset_names(params: dict) -> list[str]:
    datasets = params.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        raise ConfigError("params.yaml: `datasets` must map at least one dataset name to its format and source")
    return [str(k) for k in datasets]


def dataset_config(params: dict, name: str | None = None) -> DatasetConfig:
    """The dataset `name` of params.yaml `datasets` (without a name: the first one)."""
    names = dataset_names(params)
    name = names[0] if name is None else name
    if name not in params["datasets"]:
        raise ConfigError(f"unknown dataset {name!r}; params.yaml `datasets` defines: {', '.join(names)}")
    entry = params["datasets"][name]
    if not isinstance(entry, dict):
        raise ConfigError(f"params.yaml: `datasets.{name}` must be a mapping with `format` and `source`, got {entry!r}")
    return build(DatasetConfig, {"name": name, **entry}, f"datasets.{name}")


# --------------------------------------------------------------------------------------------
# embed

IndexType = typing.Literal["auto", "flat", "hnsw", "ivfpq"]
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclasses.dataclass(frozen=True)
class IndexConfig:
    type: IndexType = "auto"  # auto: flat below 200k items, HNSW below 5M, IVF-PQ beyond
    hnsw_m: int = param(32, ge=2, le=512)
    ef_construction: int = param(80, ge=1)
    ef_search: int = param(128, ge=1)
    nlist: int | None = param(None, ge=1)  # IVF lists; default ~4 * sqrt(n)
    pq_m: int | None = param(None, ge=1)  # PQ sub-quantisers; default dim / 8 (must divide dim)
    nprobe: int = param(32, ge=1)
    refine: int = param(4, ge=0)  # IVF-PQ: re-rank k * refine candidates exactly (0 = off)

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

    @classmethod
    def from_params(cls, params: dict) -> "EmbedConfig":
        return build(cls, params.get("embed"), "embed")


# --------------------------------------------------------------------------------------------
# discover + train


@dataclasses.dataclass(frozen=True)
class DiscoverConfig:
    seed: int = param(2019, ge=0)
    dim: int = param(64, ge=1)
    history_max: int = param(20, ge=1)
    model_relations: tuple[RelationKind, ...] | None = None  # null: what the dataset's reader suggests (stats.json)
    latent_types: int = param(8, ge=2)  # K
    alpha: float = param(0.1, ge=0)  # entropy weight (minimised: pushes q towards one type, as the reference)
    drop_virtual: bool = True  # type 0 = "no relation": left out of the reconstruction
    objective: typing.Literal["expectation", "reference"] = "expectation"  # see lrd.models.lrd
    kg_weight: float | None = param(None, ge=0)  # DistMult loss on predefined triples; null = |triples| / |interactions|
    lr: float = param(3.0e-3, gt=0)
    l2: float = param(1.0e-6, ge=0)
    batch_size: int = param(1024, ge=1)
    max_epochs: int = param(30, ge=1)
    patience: int = param(2, ge=1)
    min_delta: float = param(0.002, ge=0)  # relative held-out loss improvement that counts
    holdout: float = param(0.05, gt=0, lt=0.5)  # share of training rows held out for early stopping
    knn: int = param(10, ge=1)  # FAISS neighbours per item added as candidate pairs
    min_probability: float = param(0.5, ge=0, le=1)  # "confident" latent relation, for the readout and the static model
    row_group_size: int = param(1_000_000, ge=1)

    @classmethod
    def from_params(cls, params: dict) -> "DiscoverConfig":
        return _section(cls, params, "discover")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    arch: typing.Literal["rcf", "kda", "sasrec"]
    lrd: bool = False  # train Latent Relation Discovery jointly (+LRD)
    static_latent: bool = False  # read discover's triplets as fixed extra relations
    lr: float = param(1.0e-3, gt=0)
    layers: int | None = param(None, ge=1)  # default: train.layers (sasrec: 2)
    heads: int | None = param(None, ge=1)  # default: train.heads (sasrec: 2)
    dropout: float = param(0.0, ge=0, lt=1)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything one model's constructor reads: its spec resolved against the shared settings."""

    name: str
    arch: str
    dim: int = 64
    history_max: int = 20
    layers: int = 5
    heads: int = 4
    dropout: float = 0.0
    n_dft: int = 64
    lrd: bool = False
    static_latent: bool = False
    latent_types: int = 8
    alpha: float = 0.1
    drop_virtual: bool = True
    lrd_weight: float = 10.0
    kg_weight: float | None = None  # None: |triples| / |interactions|


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """`train` in params.yaml with the model definitions of `models`.

    The model lists say which (dataset, model, seed) stages exist; they are split by what the
    models read, so that each DVC stage depends on exactly that: `models` the processed data,
    `lrd_models` also the LLM vectors, `static_models` also discover's latent table.
    """

    specs: dict[str, ModelSpec]
    models: tuple[str, ...] = ("sasrec", "rcf", "kda")
    lrd_models: tuple[str, ...] = ("rcf_lrd", "kda_lrd")
    static_models: tuple[str, ...] = ()
    seeds: tuple[int, ...] = param((2019, 2020, 2021, 2022, 2023), ge=0)
    dim: int = param(64, ge=1)
    history_max: int = param(20, ge=1)
    model_relations: tuple[RelationKind, ...] | None = None  # null: what the dataset's reader suggests (stats.json)
    layers: int = param(5, ge=1)
    heads: int = param(4, ge=1)
    n_dft: int = param(64, ge=2)
    batch_size: int = param(256, ge=1)
    eval_users: int = param(4, ge=1)  # users scored at once in evaluation (x 100 candidates); bounds memory
    max_epochs: int = param(200, ge=1)
    # reference: the LRD code's rule (past min_epochs, stop when the last `patience` dev values
    # never rose, or when the best is min_epochs back); patience: stop after `patience` epochs
    # without a better dev NDCG@5.
    stopping: typing.Literal["reference", "patience"] = "reference"
    patience: int = param(5, ge=1)
    min_epochs: int = param(20, ge=0)
    l2: float = param(1.0e-6, ge=0)
    kg_weight: float | None = param(None, ge=0)  # γ; null = |triples| / |interactions|
    lrd_weight: float = param(10.0, ge=0)  # λ
    precision: typing.Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast where the CPU/GPU has it
    threads: int | None = param(None, ge=1)  # torch CPU threads (default: torch's choice)
    full_ranking: bool = False  # also rank every item (minus the user's earlier ones) at test time

    KINDS = {"models": "a base model (no lrd, no static_latent)", "lrd_models": "an +LRD model (lrd: true)",
             "static_models": "a static variant (static_latent: true)"}

    def validate(self) -> None:
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"params.yaml: `train.seeds` lists a seed twice: {list(self.seeds)}")
        listed = [n for kind in self.KINDS for n in getattr(self, kind)]
        twice = sorted({n for n in listed if listed.count(n) > 1})
        if twice:
            raise ConfigError(f"params.yaml: model(s) {', '.join(twice)} listed twice in train.models / lrd_models / static_models")
        for kind, what in self.KINDS.items():
            for name in getattr(self, kind):
                spec = self.spec(name)
                actual = "lrd_models" if spec.lrd else "static_models" if spec.static_latent else "models"
                if actual != kind:
                    raise ConfigError(f"params.yaml: `train.{kind}` lists {name!r}, which is not {what}; list it under `train.{actual}`")

    @property
    def all_models(self) -> tuple[str, ...]:
        return self.models + self.lrd_models + self.static_models

    def spec(self, name: str) -> ModelSpec:
        if name not in self.specs:
            raise ConfigError(f"unknown model {name!r}; params.yaml `models` defines: {', '.join(self.specs)}")
        return self.specs[name]

    def model(self, name: str, discover: "DiscoverConfig") -> ModelConfig:
        spec = self.spec(name)
        sasrec = spec.arch == "sasrec"
        layers, heads = spec.layers or (2 if sasrec else self.layers), spec.heads or (2 if sasrec else self.heads)
        if self.dim % heads:
            raise ConfigError(f"params.yaml: `dim` = {self.dim} must be divisible by the {heads} attention heads of model {name!r}")
        # Only what the model reads: a base model's config carries no LRD settings.
        lrd = {"latent_types": discover.latent_types, "alpha": discover.alpha, "drop_virtual": discover.drop_virtual,
               "lrd_weight": self.lrd_weight} if spec.lrd else {"latent_types": discover.latent_types} if spec.static_latent else {}
        return ModelConfig(
            name=name, arch=spec.arch, dim=self.dim, history_max=self.history_max, layers=layers, heads=heads,
            dropout=spec.dropout, n_dft=self.n_dft, lrd=spec.lrd, static_latent=spec.static_latent, kg_weight=self.kg_weight, **lrd,
        )

    @classmethod
    def from_params(cls, params: dict) -> "TrainConfig":
        models = params.get("models") or {}
        if not isinstance(models, dict):
            raise ConfigError(f"params.yaml: `models` must map model names to their settings, got {models!r}")
        specs = {str(name): build(ModelSpec, spec, f"models.{name}") for name, spec in models.items()}
        return _section(cls, params, "train", extra={"specs": specs})
