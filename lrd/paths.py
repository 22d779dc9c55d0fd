"""Every artefact path of the pipeline, in one place.

Stages, the SQL views, the CLI and checkpoints all ask `Paths` where things live; dvc.yaml
spells the same paths for DVC (tests/test_layout.py checks that the two agree). Everything
below the download is kept per dataset, and every trained model per (dataset, model, seed):

    data/raw/<ds>/  data/processed/<ds>/  data/embeddings/<ds>/  data/relations/<ds>/   (DVC cache)
    models/<ds>/discover/  models/<ds>/<model>/<seed>/{best,state}.pt                    (DVC cache)
    metrics/<ds>/{embed,discover,results}.json  plots/<ds>/discover.csv                  (git)
    results/<ds>/<model>/<seed>/{metrics.json,ranks.parquet,curve.csv[,relations.pt]}   (git)
    reports/<ds>/{results.{md,csv,png},ablations.md,curves.png,lifts.png}  reports/results.md (git)

Paths are relative to `root`, the repository by default, so a test can point a whole run at a
temporary folder without changing directory.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

PROCESSED_TABLES = ("interactions", "users", "items", "relation_types", "relations", "candidates")


@dataclasses.dataclass(frozen=True)
class Paths:
    dataset: str
    root: Path = Path(".")

    # -- download and ingest
    @property
    def downloads(self) -> Path:
        """Fetched archives, shared by datasets, reused while their checksum matches."""
        return self.root / "data/raw/.downloads"

    @property
    def raw(self) -> Path:
        return self.root / "data/raw" / self.dataset

    @property
    def processed(self) -> Path:
        return self.root / "data/processed" / self.dataset

    def table(self, name: str) -> Path:
        """One of PROCESSED_TABLES."""
        return self.processed / f"{name}.parquet"

    @property
    def stats(self) -> Path:
        return self.processed / "stats.json"

    # -- embed
    @property
    def embedding_cache(self) -> Path:
        """Vectors per encoder identity and item text, shared by datasets and kept across models."""
        return self.root / "data/embeddings/.cache"

    @property
    def embeddings(self) -> Path:
        """The stage's output: the current model's store below it."""
        return self.root / "data/embeddings" / self.dataset

    def store(self, model_slug: str) -> Path:
        return self.embeddings / model_slug

    @property
    def embed_identity(self) -> Path:
        """What decides the vectors (lrd.embed.pipeline.vectors_identity), beside the store: the
        +LRD cells depend on it instead of the vectors' bytes."""
        return self.root / "data/embeddings" / f"{self.dataset}.identity.json"

    @property
    def embed_metrics(self) -> Path:
        """How the last embed run went (counts, timings): kept out of the store so that a rerun
        with the same vectors leaves the store, and everything after it, unchanged."""
        return self.root / "metrics" / self.dataset / "embed.json"

    # -- discover
    @property
    def relations(self) -> Path:
        return self.root / "data/relations" / self.dataset

    @property
    def latent(self) -> Path:
        return self.relations / "latent.parquet"

    @property
    def relation_types(self) -> Path:
        """ingest's relation types plus discover's latent ones."""
        return self.relations / "relation_types.parquet"

    @property
    def latent_joint(self) -> Path:
        """discover's pairs labelled again by the best jointly trained +LRD model (compare)."""
        return self.relations / "latent_joint.parquet"

    @property
    def discover_model(self) -> Path:
        return self.root / "models" / self.dataset / "discover"

    @property
    def discover_checkpoint(self) -> Path:
        return self.discover_model / "checkpoint.pt"

    @property
    def discover_metrics(self) -> Path:
        return self.root / "metrics" / self.dataset / "discover.json"

    @property
    def discover_curve(self) -> Path:
        return self.root / "plots" / self.dataset / "discover.csv"

    # -- train: one folder per (model, seed) for the weights, one for the results
    def run_model(self, model: str, seed: int) -> Path:
        """The run's weights: best.pt (best dev epoch) and state.pt (resume point)."""
        return self.root / "models" / self.dataset / model / str(seed)

    def best_checkpoint(self, model: str, seed: int) -> Path:
        return self.run_model(model, seed) / "best.pt"

    def resume_state(self, model: str, seed: int) -> Path:
        return self.run_model(model, seed) / "state.pt"

    @property
    def results(self) -> Path:
        return self.root / "results" / self.dataset

    def run_results(self, model: str, seed: int) -> Path:
        """What a finished run reports, kept in git: metrics.json, ranks.parquet, curve.csv."""
        return self.results / model / str(seed)

    def run_metrics(self, model: str, seed: int) -> Path:
        return self.run_results(model, seed) / "metrics.json"

    def run_ranks(self, model: str, seed: int) -> Path:
        return self.run_results(model, seed) / "ranks.parquet"

    def run_curve(self, model: str, seed: int) -> Path:
        return self.run_results(model, seed) / "curve.csv"

    def run_relations(self, model: str, seed: int) -> Path:
        """An +LRD run's relation extractor and decoder embeddings (best weights): what compare
        reads, so a clone without models/ re-makes every report."""
        return self.run_results(model, seed) / "relations.pt"

    # -- compare
    @property
    def reports(self) -> Path:
        return self.root / "reports" / self.dataset

    @property
    def results_metrics(self) -> Path:
        """The dataset's results in numbers only (test means, lifts): what `dvc metrics show` shows."""
        return self.root / "metrics" / self.dataset / "results.json"

    @property
    def summary_report(self) -> Path:
        """The paper-style table over every dataset."""
        return self.root / "reports" / "results.md"
