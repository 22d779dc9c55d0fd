"""`discover`, `models` and `train` in params.yaml: standalone discovery, the model definitions and
the training runs."""

from __future__ import annotations

import dataclasses
import typing

from lrd.config.base import RelationKind, _section, build, param
from lrd.errors import ConfigError

@dataclasses.dataclass(frozen=True)
class DiscoverConfig:
    seed: int = param(2019, ge=0, lt=2**31)
    dim: int = param(64, ge=1, le=4096)  # beyond: memory, not modelling
    history_max: int = param(20, ge=1, le=1000)
    model_relations: tuple[RelationKind, ...] | None = None  # null: what the dataset's reader suggests (stats.json)
    latent_types: int = param(8, ge=2, le=1000)  # K
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
    # true (the previous way, as in joint training): the predefined types of model_relations
    # compete with the latent ones for every pair, so the latent types learn what genres and years
    # leave unexplained: on ML-100K co-watching across genres. false: the latent types alone
    # explain every pair (on ML-100K and Office each type's pairs then share attributes above
    # chance; almost every pair is confident). The readout: metrics/<ds>/discover.json, reports/<ds>/relations.md.
    predefined_types: bool = False
    # Neighbours by text and attributes: the unit LLM vector joined with this weight times the
    # item's attribute values (genres, year bucket, category, brand) as a unit vector, searched
    # exactly (up to 200k items). 0: FAISS neighbours of the LLM vectors alone (the previous way).
    knn_attributes: float = param(0.0, ge=0, le=100)
    # Co-occurring pairs beyond popularity (PMI = log of how much more often a pair co-occurs than
    # its items' counts predict). The candidate pairs labelled: co-occurring pairs seen at least
    # cooccur_min_count times with PMI >= cooccur_min_pmi (1, null: every co-occurring pair, the
    # previous way). Training: only (history item, target) pairs with PMI >= train_min_pmi take
    # part in the reconstruction (null: every pair, the previous way).
    cooccur_min_count: int = param(2, ge=1)
    cooccur_min_pmi: float | None = param(1.0, ge=-20, le=20)
    train_min_pmi: float | None = param(1.0, ge=-20, le=20)
    min_probability: float = param(0.5, ge=0, le=1)  # "confident" latent relation, for the readout and the static model
    row_group_size: int = param(1_000_000, ge=1)
    # Candidate pairs and their labels: local (this process) or ray (a Ray Data job on the cluster at
    # RAY_ADDRESS, else a local one; pip install -e '.[scale]'): the same rows, ordered by head range.
    engine: typing.Literal["local", "ray"] = "local"
    ray_workers: int | None = param(None, ge=1)  # labelling actors, each with the FAISS index; null: one per CPU

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
    # KDA's temporal kernel: dft starts each predefined relation type from the spectrum of its
    # empirical gap distribution (the reference's KDA default), random from N(0, 0.01²).
    kernel_init: typing.Literal["dft", "random"] = "dft"
    # Ablations of +LRD models (README "What the lift depends on"); null: the shared setting.
    latent_types: int | None = param(None, ge=2, le=1000)  # K (default: discover.latent_types)
    lrd_weight: float | None = param(None, ge=0)  # λ (default: train.lrd_weight)
    # The item vectors LRD reads: the LLM's; random ones of the same dimension and per-item norm;
    # or the LLM's shuffled across items (the same distribution without item identity).
    vectors: typing.Literal["llm", "random", "shuffled"] = "llm"
    reconstruction: bool = True  # false: the latent channels and the entropy term only
    # The joint LRD loss: reference (the paper code's channel average, which collapses the types:
    # README "The joint model's relations") or expectation (discover's, which keeps them apart).
    objective: typing.Literal["reference", "expectation"] = "reference"

    def validate(self) -> None:
        changed = [k for k in ("latent_types", "lrd_weight") if getattr(self, k) is not None]
        changed += [k for k, default in (("vectors", "llm"), ("reconstruction", True), ("objective", "reference"))
                    if getattr(self, k) != default]
        if changed and not self.lrd:
            raise ConfigError(f"params.yaml: a model's {', '.join(changed)} apply to +LRD models only: add `lrd: true` or remove them")


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
    kernel_init: str = "dft"
    lrd: bool = False
    static_latent: bool = False
    latent_types: int = 8
    alpha: float = 0.1
    drop_virtual: bool = True
    lrd_weight: float = 10.0
    kg_weight: float | None = None  # None: |triples| / |interactions|
    vectors: str = "llm"
    reconstruction: bool = True
    objective: str = "reference"


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
    # Ablations of the +LRD model (README "What the lift depends on"): +LRD variants run as their
    # own matrix with their own seeds; each one's lift is measured against its base model.
    ablation_models: tuple[str, ...] = ()
    seeds: tuple[int, ...] = param((2019, 2020, 2021, 2022, 2023), ge=0, lt=2**31)
    ablation_seeds: tuple[int, ...] = param((2019, 2020, 2021), ge=0, lt=2**31)
    dim: int = param(64, ge=1, le=4096)  # beyond: memory, not modelling
    history_max: int = param(20, ge=1, le=1000)
    model_relations: tuple[RelationKind, ...] | None = None  # null: what the dataset's reader suggests (stats.json)
    layers: int = param(5, ge=1)
    heads: int = param(4, ge=1)
    n_dft: int = param(64, ge=2)
    batch_size: int = param(256, ge=1)
    # users scored at once in evaluation (x 100 candidates); null: as many as keep one call's
    # activations within a core's L2 cache (lrd.train.evaluation.users_per_call)
    eval_users: int | None = param(None, ge=1)
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
    # auto: torch.compile (inductor) the relational models where a C++ compiler (CPU) or Triton
    # (GPU) is found, 2-3x faster, and on a CPU score with the native channel kernel
    # (lrd.models.native); inductor: always; none: eager (lrd.train.device.compile_model)
    compile: typing.Literal["auto", "inductor", "none"] = "auto"
    full_ranking: bool = False  # also rank every item (minus the user's earlier ones) at test time
    # Several processes (DDP; README "Training on several processes"): a torchrun launch always
    # trains as its ranks; `ddp` makes `stages/run train` (so DVC) start `processes` ranks itself.
    distributed: typing.Literal["none", "ddp"] = "none"
    processes: int = param(2, ge=1)  # ranks on this machine for `ddp` (one per GPU on GPU machines)
    ddp_timeout: float = param(600.0, gt=0)  # seconds a rank waits for another before the run fails

    KINDS = {"models": "a base model (no lrd, no static_latent)", "lrd_models": "an +LRD model (lrd: true)",
             "static_models": "a static variant (static_latent: true)", "ablation_models": "an +LRD model (lrd: true)"}

    def validate(self) -> None:
        for key in ("seeds", "ablation_seeds"):
            seeds = getattr(self, key)
            if len(set(seeds)) != len(seeds):
                raise ConfigError(f"params.yaml: `train.{key}` lists a seed twice: {list(seeds)}")
        listed = [n for kind in self.KINDS for n in getattr(self, kind)]
        twice = sorted({n for n in listed if listed.count(n) > 1})
        if twice:
            raise ConfigError(f"params.yaml: model(s) {', '.join(twice)} listed twice in train.models / lrd_models / static_models")
        for kind, what in self.KINDS.items():
            for name in getattr(self, kind):
                spec = self.spec(name)
                actual = "lrd_models" if spec.lrd else "static_models" if spec.static_latent else "models"
                if actual != kind and not (kind == "ablation_models" and spec.lrd):
                    raise ConfigError(f"params.yaml: `train.{kind}` lists {name!r}, which is not {what}; list it under `train.{actual}`")

    @property
    def all_models(self) -> tuple[str, ...]:
        """The models of the main results table (the ablations have their own)."""
        return self.models + self.lrd_models + self.static_models

    def changes(self, name: str) -> str:
        """What an +LRD model sets apart from the shared defaults, in words (the ablation table's column)."""
        spec = self.spec(name)
        said = [("random temporal kernel" if spec.kernel_init == "random" and spec.arch == "kda" else ""),
                {"llm": "", "random": "random item vectors", "shuffled": "LLM vectors shuffled across items"}[spec.vectors],
                "" if spec.reconstruction else "no reconstruction loss",
                "" if spec.objective == "reference" else f"{spec.objective} objective",
                f"K = {spec.latent_types}" if spec.latent_types is not None else "",
                f"λ = {spec.lrd_weight:g}" if spec.lrd_weight is not None else ""]
        return ", ".join(s for s in said if s) or "default"

    def base_of(self, name: str) -> str | None:
        """The model a variant's lift is measured against: the first base model of `train.models`
        (then of `models`) with the variant's architecture and base settings (lr, layers, heads,
        dropout, kernel_init); None for a base model."""
        spec = self.spec(name)
        if not (spec.lrd or spec.static_latent):
            return None
        same = ("arch", "lr", "layers", "heads", "dropout", "kernel_init")
        candidates = list(self.models) + [m for m in self.specs if m not in self.models]
        return next((m for m in candidates if not (self.specs[m].lrd or self.specs[m].static_latent)
                     and all(getattr(self.specs[m], k) == getattr(spec, k) for k in same)), None)

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
        lrd = {"latent_types": spec.latent_types or discover.latent_types, "alpha": discover.alpha, "drop_virtual": discover.drop_virtual,
               "lrd_weight": self.lrd_weight if spec.lrd_weight is None else spec.lrd_weight,
               "vectors": spec.vectors, "reconstruction": spec.reconstruction, "objective": spec.objective} \
            if spec.lrd else {"latent_types": discover.latent_types} if spec.static_latent else {}
        return ModelConfig(
            name=name, arch=spec.arch, dim=self.dim, history_max=self.history_max, layers=layers, heads=heads,
            dropout=spec.dropout, n_dft=self.n_dft, kernel_init=spec.kernel_init if spec.arch == "kda" else "random",
            lrd=spec.lrd, static_latent=spec.static_latent, kg_weight=self.kg_weight, **lrd,
        )

    @classmethod
    def from_params(cls, params: dict) -> "TrainConfig":
        models = params.get("models") or {}
        if not isinstance(models, dict):
            raise ConfigError(f"params.yaml: `models` must map model names to their settings, got {models!r}")
        specs = {str(name): build(ModelSpec, spec, f"models.{name}") for name, spec in models.items()}
        return _section(cls, params, "train", extra={"specs": specs})
