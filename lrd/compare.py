"""The results: per dataset, every model's mean ± std over its seeds, and for each +LRD (or
static) variant its lift over the base model with a 95% confidence interval, a paired t-test
over seeds and a Wilcoxon signed-rank test over users; a chart with error bars from the seeds;
and a paper-style table of datasets x models.

Runs are read from results/<ds>/<model>/<seed>/, whatever finished: a model shows as many
seeds as have results, and a lift pairs only the seeds both models have.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lrd.errors import DataError, MissingUpstreamError
from lrd.io import atomic_path, read_json, write_json
from lrd.paths import Paths

log = logging.getLogger(__name__)

METRICS = ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20")
PAPER_METRICS = ("HR@5", "NDCG@5", "HR@10", "NDCG@10")
ALPHA = 0.05
MIN_SEEDS_FOR_MARK = 3  # below this, a p-value is shown but never starred: two seeds are an anecdote
# The charts compare writes per dataset, reports/<ds>/<name>.png (relations.png through
# lrd/discover/report.py): dvc.yaml `plots:` lists each for every dataset (tests/test_layout.py),
# and the demo's dvc.yaml lists them for its dataset.
CHARTS = ("results", "curves", "lifts", "discover", "relations")


@dataclasses.dataclass
class ModelRuns:
    name: str
    runs: dict[int, dict]  # seed -> metrics.json

    @property
    def seeds(self) -> list[int]:
        return sorted(self.runs)

    def values(self, metric: str, seeds: list[int] | None = None, split: str = "test") -> np.ndarray:
        return np.array([self.runs[s][split][metric] for s in (seeds or self.seeds)])

    def mean_std(self, metric: str) -> tuple[float, float]:
        v = self.values(metric)
        return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0

    @property
    def info(self) -> dict:
        return self.runs[self.seeds[0]]


@dataclasses.dataclass
class Lift:
    metric: str
    n: int  # seeds both models have
    relative: float  # (mean variant − mean base) / mean base
    ci: tuple[float, float]  # 95% interval of the same, from the paired per-seed differences
    p_seeds: float  # paired t-test over seeds
    p_users: float | None = None  # Wilcoxon signed-rank over users of their NDCG@5 averaged over the seeds, NDCG@5 only


def load_runs(paths: Paths, models: list[str], seeds_of: Callable[[str], Iterable[int]] | None = None,
              differs: Callable[[str, dict], list[str]] | None = None) -> dict[str, ModelRuns]:
    """Every finished run of the given models (models without any are left out); `seeds_of`:
    the seeds params.yaml lists for a model, the only ones counted (a seed dropped from the
    list leaves its folder behind, which must not enter the means); `differs(model, metrics)`:
    the settings in which a run differs from params.yaml (`settings_differ`), refused."""
    out = {}
    for name in models:
        folder = paths.results / name
        wanted = None if seeds_of is None else set(seeds_of(name))
        runs = {int(p.parent.name): read_json(p, f"re-run that cell (`dvc repro -f <stage>` of {paths.dataset}-{name}-{p.parent.name}; "
                                                     "`lrd matrix status` names it)")
                for p in sorted(folder.glob("*/metrics.json")) if p.parent.name.isdigit() and (wanted is None or int(p.parent.name) in wanted)}
        for seed, run in runs.items():
            changed = differs(name, run) if differs else []
            if changed:
                raise DataError(f"{paths.run_metrics(name, seed)} was computed with other settings than params.yaml's "
                                f"({'; '.join(changed)}): re-run the cell (`lrd matrix run --rerun-stale --dataset {paths.dataset} "
                                f"--model {name} --seed {seed}`) or restore those params")
        if runs:
            out[name] = ModelRuns(name, runs)
    return out


def settings_differ(name: str, run: dict, train, discover) -> list[str]:
    """What a run recorded in metrics.json `settings` that params.yaml (TrainConfig, DiscoverConfig)
    now sets otherwise, as "key: then -> now"; [] for runs from before runs recorded their settings
    (dvc.lock holds what those ran with)."""
    recorded = run.get("settings") or {}
    model = dataclasses.asdict(train.model(name, discover))
    changed = [(k, v, model[k]) for k, v in (recorded.get("model") or {}).items() if k in model and model[k] != v]
    for k, v in (recorded.get("train") or {}).items():
        if k in ("compiled", "relations"):  # where it ran and what the data holds: not params
            continue
        now = train.spec(name).lr if k == "lr" else getattr(train, k, v)
        if now != v:
            changed.append((k, v, now))
    return [f"{k}: {then!r} -> {now!r}" for k, then, now in changed]


def lift(variant: ModelRuns, base: ModelRuns, metric: str, paths: Paths | None = None) -> Lift | None:
    from scipy import stats

    seeds = sorted(set(variant.seeds) & set(base.seeds))
    if not seeds:
        return None
    v, b = variant.values(metric, seeds), base.values(metric, seeds)
    d, scale = v - b, b.mean()
    rel = d.mean() / scale
    if len(seeds) > 1 and d.std(ddof=1) > 0:
        half = stats.t.ppf(0.975, len(seeds) - 1) * d.std(ddof=1) / math.sqrt(len(seeds))
        ci, p = ((d.mean() - half) / scale, (d.mean() + half) / scale), float(stats.ttest_rel(v, b).pvalue)
    else:
        ci, p = (float("nan"), float("nan")), float("nan")
    p_users = user_test(paths, variant.name, base.name, seeds) if paths is not None and metric == "NDCG@5" else None
    return Lift(metric, len(seeds), float(rel), (float(ci[0]), float(ci[1])), p, p_users)


def user_ndcg5(paths: Paths, model: str, seed: int) -> dict[int, float]:
    path = paths.run_ranks(model, seed)
    try:
        table = pq.read_table(path, columns=["split", "user", "rank"]).to_pydict()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path} is not a readable Parquet file ({str(exc)[:80]}): re-run the cell {paths.dataset}-{model}-{seed} "
                        "(`lrd matrix status` names its stage; `dvc repro -f <stage>`)") from None
    return {u: (1.0 / math.log2(r + 1) if r <= 5 else 0.0) for s, u, r in zip(table["split"], table["user"], table["rank"]) if s == "test"}


def user_test(paths: Paths, variant: str, base: str, seeds: list[int]) -> float:
    """Wilcoxon signed-rank test over users of the difference of their test NDCG@5, each user's
    averaged over the seeds first: a (user, seed) pair is not an independent sample (pooling them
    made two seeds look like 9,810 observations). Users where both tie drop out."""
    from scipy import stats

    a = [user_ndcg5(paths, variant, seed) for seed in seeds]
    b = [user_ndcg5(paths, base, seed) for seed in seeds]
    users = sorted(set.intersection(*(set(x) for x in a + b)))
    diffs = np.array([np.mean([x[u] for x in a]) - np.mean([x[u] for x in b]) for u in users])
    return float(stats.wilcoxon(diffs).pvalue) if (diffs != 0).any() else 1.0


def lifts(paths: Paths, models: dict[str, ModelRuns], bases: dict[str, str | None],
          base_runs: dict[str, ModelRuns] | None = None) -> dict[str, tuple[str, list[Lift]]]:
    """Each variant's lift over its base model (`bases`: params' TrainConfig.base_of), where both have runs."""
    found = {**(base_runs or {}), **models}
    out = {}
    for name in models:
        base = bases.get(name)
        if base in found:
            out[name] = (base, [x for m in METRICS if (x := lift(models[name], found[base], m, paths)) is not None])
    return out


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:+.2f}%"


def _p(p: float | None, n: int) -> str:
    """A p-value, starred below ALPHA only with at least MIN_SEEDS_FOR_MARK seeds."""
    if p is None or math.isnan(p):
        return "n/a"
    mark = " *" if p < ALPHA and n >= MIN_SEEDS_FOR_MARK else ""
    return f"{p:.3f}{mark}" if p >= 0.001 else f"{p:.1e}{mark}"


def dataset_markdown(paths: Paths, models: dict[str, ModelRuns], gains: dict, n_negatives: int | str) -> str:
    lines = [
        f"# Results on {paths.dataset}",
        "",
        f"Test split: each user's held-out item ranked among it and its {n_negatives} stored negatives (ties count against it); "
        "the weights of the best dev NDCG@5 epoch. Mean ± standard deviation over n seeds.",
        "",
        "| model | n | " + " | ".join(METRICS) + " | best epochs | s / epoch (training + dev ranking) | training | dev ranking |",
        "|---|---|" + "---|" * len(METRICS) + "---|---|---|---|",
    ]
    for name, m in models.items():
        # One seed has no spread to show: its cells are the values alone.
        cells = [f"{a:.4f} ± {s:.4f}" if len(m.seeds) > 1 else f"{a:.4f}" for a, s in map(m.mean_std, METRICS)]
        epochs = ", ".join(str(m.runs[s]["best_epoch"]) for s in m.seeds)
        # from the seconds themselves, which every metrics.json has (eval_seconds: every epoch's
        # dev ranking, and the final dev + test ranking)
        train, rank = ([m.runs[s][k] / max(m.runs[s]["epochs"], 1) for s in m.seeds] for k in ("train_seconds", "eval_seconds"))
        lines.append(f"| {name} | {len(m.seeds)} | " + " | ".join(cells)
                     + f" | {epochs} | {np.mean(train) + np.mean(rank):.1f} | {np.mean(train):.1f} | {np.mean(rank):.1f} |")
    mixed = [f"{name}: {'; '.join(f'seed {s} {k}' for s, k in sorted(kinds.items()))}" for name, m in models.items()
             if len(set((kinds := {s: _machine(r) for s, r in m.runs.items()}).values())) > 1]
    if mixed:
        lines += ["", "Seeds run on different machines or precisions (within float noise of each other at best): " + "; ".join(mixed) + "."]
    if gains:
        lines += ["", "Lift of each variant over its base model: relative change of the test means over the seeds both have, "
                  "[95% confidence interval from the paired per-seed differences], p of a paired t-test over seeds; "
                  "for NDCG@5 also p of a Wilcoxon signed-rank test over users (each user's NDCG@5 averaged over the seeds). "
                  f"* = p < {ALPHA} with n >= {MIN_SEEDS_FOR_MARK} seeds (never below).", "",
                  "| model | vs | n | " + " | ".join(f"{m} lift [95% CI] | p" for m in METRICS) + " | NDCG@5 p (users) |",
                  "|---|---|---|" + "---|---|" * len(METRICS) + "---|"]
        for name, (base, ls) in gains.items():
            cells = [f"{_pct(x.relative)} [{_pct(x.ci[0])}, {_pct(x.ci[1])}] | {_p(x.p_seeds, x.n)}" for x in ls]
            p_users = next((x.p_users for x in ls if x.metric == "NDCG@5"), None)
            lines.append(f"| {name} | {base} | {ls[0].n} | " + " | ".join(cells) + f" | {_p(p_users, ls[0].n)} |")
    return "\n".join(lines) + "\n"


def _machine(run: dict) -> str:
    """Where and how a run computed: CPU (or device), precision, compiled or not (metrics.json; older runs lack some)."""
    return ", ".join(str(x) for x in (run.get("cpu") or run.get("device", "?"), run.get("precision", "?"),
                                      "compiled" if run.get("compiled") else "eager"))


def dataset_csv(models: dict[str, ModelRuns], gains: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "base", "seeds"] + [f"{m} {k}" for m in METRICS for k in ("mean", "std")]
               + [f"{m} {k}" for m in METRICS for k in ("lift", "lift_lo", "lift_hi", "p_seeds")] + ["NDCG@5 p_users"])
    for name, m in models.items():
        base, ls = gains.get(name, ("", []))
        by_metric = {x.metric: x for x in ls}
        row = [name, base, len(m.seeds)] + [f"{v:.6f}" for metric in METRICS for v in m.mean_std(metric)]
        for metric in METRICS:
            x = by_metric.get(metric)
            row += [f"{x.relative:.6f}", f"{x.ci[0]:.6f}", f"{x.ci[1]:.6f}", f"{x.p_seeds:.6g}"] if x else ["", "", "", ""]
        p_users = by_metric["NDCG@5"].p_users if "NDCG@5" in by_metric else None
        w.writerow(row + ["" if p_users is None else f"{p_users:.6g}"])
    return buf.getvalue()


def bar_figure(models: dict[str, ModelRuns], dataset: str):
    """Every model's test scores, mean ± std over seeds, one group of bars per metric."""
    plt = _pyplot()
    names = list(models)
    x = np.arange(len(METRICS))
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for i, name in enumerate(names):
        means, stds = zip(*map(models[name].mean_std, METRICS))
        ax.bar(x + i * width, means, width, yerr=stds, label=f"{name} (n={len(models[name].seeds)})", capsize=2)
    ax.set_xticks(x + width * (len(names) - 1) / 2, METRICS)
    ax.set_ylabel("test score")
    ax.set_title(f"{dataset}: HR@K / NDCG@K, mean ± std over seeds")
    _legend_beside(ax)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _legend_beside(ax) -> None:
    """The legend right of the plot: inside, it covers the bars of the highest scores (HR@20)."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()  # counts the legend beside the plot in
    fig.savefig(path, dpi=120, format="png")
    _pyplot().close(fig)


def curves_figure(paths: Paths, models: dict[str, ModelRuns]):
    """Dev NDCG@5 per epoch of every run, one colour per model (a line per seed)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, m) in enumerate(models.items()):
        for j, seed in enumerate(m.seeds):
            curve = paths.run_curve(name, seed)
            if not curve.exists():
                continue
            rows = list(csv.DictReader(curve.open()))
            epochs = [int(r["epoch"]) for r in rows]
            ax.plot(epochs, [float(r["dev_NDCG@5"]) for r in rows], color=colours[i % len(colours)], alpha=0.8, lw=1,
                    label=f"{name} (n={len(m.seeds)})" if j == 0 else None)
            best = m.runs[seed]["best_epoch"]
            if 0 < best <= len(rows):
                ax.plot([best], [float(rows[best - 1]["dev_NDCG@5"])], "o", color=colours[i % len(colours)], ms=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("dev NDCG@5")
    ax.set_title(f"{paths.dataset}: dev NDCG@5 per epoch, every run (dot: the best epoch, whose weights are tested)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, ncol=2)
    else:
        _nothing_yet(ax, "no run has a curve yet")
    ax.grid(alpha=0.3)
    return fig


def _nothing_yet(ax, why: str) -> None:
    """A chart with nothing to draw says so in words, instead of showing empty axes."""
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, fontsize=11, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def lifts_figure(dataset: str, gains: dict):
    """Each variant's relative lift over its base, per metric, with the 95% CI from the seeds."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.set_title(f"{dataset}: lift of each variant over its base model")
    drawn = {}
    for name, (_, ls) in gains.items():
        mid, err, n = _lift_bars(ls)
        if not np.isnan(mid).all():
            drawn[name] = (mid, err, n)
    if not drawn:
        _nothing_yet(ax, "No lift to show yet: a variant (e.g. kda_lrd) and its base model (kda)\n"
                         "need finished runs of the same seeds. `lrd matrix status` shows which have finished.")
        return fig
    ax.set_title(f"{dataset}: lift of each variant over its base model (no error bar: fewer than 2 seeds for a CI)")
    width = 0.8 / len(drawn)
    x = np.arange(len(METRICS))
    for i, (name, (mid, err, n)) in enumerate(drawn.items()):
        ax.bar(x + i * width, mid, width, yerr=err, capsize=2, label=f"{name} vs {gains[name][0]} (n={n})")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x + width * (len(drawn) - 1) / 2, METRICS)
    ax.set_ylabel("relative lift, % (95% CI over seeds)")
    _legend_beside(ax)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _lift_bars(ls: list) -> tuple[np.ndarray, np.ndarray, int]:
    """One variant's lifts per metric in %, their CI as error bars (0 where there is none), and n."""
    by_metric = {x.metric: x for x in ls}
    mid = np.array([100 * by_metric[m].relative if m in by_metric else np.nan for m in METRICS])
    lo = np.array([100 * by_metric[m].ci[0] if m in by_metric else np.nan for m in METRICS])
    hi = np.array([100 * by_metric[m].ci[1] if m in by_metric else np.nan for m in METRICS])
    return mid, np.nan_to_num(np.vstack([mid - lo, hi - mid]), nan=0.0), (ls[0].n if ls else 0)


def discover_figure(curve: Path, dataset: str):
    """discover's LRD loss and how often it recognises a real pair, per epoch, on its training
    and held-out pairs."""
    rows = list(csv.DictReader(curve.open()))
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    fig.suptitle(f"{dataset}: discover's training (pairs of an item and the user's next item)")
    epochs = [int(r["epoch"]) for r in rows]
    titles = {"lrd": "LRD loss (lower is better)",
              "lrd_accuracy": "share of pairs where the real earlier item\nscores above a random item (higher is better)"}
    for key, ax in (("lrd", a), ("lrd_accuracy", b)):
        for split, label in (("train", "training pairs"), ("holdout", "held-out pairs")):
            if rows and f"{split}_{key}" in rows[0]:
                ax.plot(epochs, [float(r[f"{split}_{key}"]) for r in rows], label=label)
        ax.set_xlabel("epoch")
        ax.set_title(titles[key], fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            _nothing_yet(ax, "no epoch recorded")
        ax.grid(alpha=0.3)
    return fig


def compact_metrics(models: dict[str, ModelRuns], gains: dict) -> dict:
    """What `dvc metrics show` shows: per model the test NDCG@5 and HR@5 means over its seeds and
    n, per variant its NDCG@5 lift with the 95% CI and the paired p over seeds (reports/<ds>/results.md
    has the rest)."""
    out: dict = {}
    for name, m in models.items():  # few columns per model: one row per dataset has to fit a terminal
        out[name] = {"n": len(m.seeds), **{metric: round(m.mean_std(metric)[0], 4) for metric in ("NDCG@5", "HR@5")}}
        if name in gains:
            for x in gains[name][1]:
                if x.metric == "NDCG@5":  # NaN (one seed) would not be valid JSON: left out
                    out[name].update({k: round(v, 4) for k, v in (("lift_NDCG@5", x.relative), ("lift_NDCG@5_ci_low", x.ci[0]),
                                                                   ("lift_NDCG@5_ci_high", x.ci[1]), ("lift_NDCG@5_p", x.p_seeds))
                                      if not math.isnan(v)})
    return out


def report_dataset(paths: Paths, model_names: list[str], n_negatives: int | str, bases: dict[str, str | None],
                   seeds_of: Callable[[str], Iterable[int]] | None = None,
                   differs: Callable[[str, dict], list[str]] | None = None) -> dict[str, ModelRuns]:
    """Write reports/<ds>/results.{md,csv,png}, curves.png, lifts.png (and discover.png where
    discover ran) and metrics/<ds>/results.json; returns the runs it found."""
    models = load_runs(paths, model_names, seeds_of, differs)
    if not models:
        raise MissingUpstreamError(f"no finished run under {paths.results}: run `dvc repro` for the train stages of {paths.dataset} first")
    gains = lifts(paths, models, bases)
    with atomic_path(paths.reports / "results.md") as tmp:
        tmp.write_text(dataset_markdown(paths, models, gains, n_negatives))
    with atomic_path(paths.reports / "results.csv") as tmp:
        tmp.write_text(dataset_csv(models, gains))
    for name, draw in (("results", lambda: bar_figure(models, paths.dataset)), ("curves", lambda: curves_figure(paths, models)),
                       ("lifts", lambda: lifts_figure(paths.dataset, gains))):
        with atomic_path(paths.reports / f"{name}.png") as tmp:
            _save(draw(), tmp)
    if paths.discover_curve.exists():
        with atomic_path(paths.reports / "discover.png") as tmp:
            _save(discover_figure(paths.discover_curve, paths.dataset), tmp)
    write_json(compact_metrics(models, gains), paths.results_metrics)
    return models


ABLATION_METRICS = ("NDCG@5", "HR@5", "NDCG@10", "HR@10")


def ablations_markdown(paths: Paths, variants: dict[str, ModelRuns], gains: dict, described: dict[str, str]) -> str:
    lines = [
        f"# What the lift depends on: {paths.dataset}",
        "",
        "Each +LRD variant against its base model (the paper's setting against KDA with the same random temporal kernel; the "
        "ablations against KDA): test mean ± std over the n seeds both have, the relative lift [95% CI from the paired "
        "per-seed differences] and p of a paired t-test over seeds; for NDCG@5 also p of a Wilcoxon signed-rank test over users "
        f"(each user's NDCG@5 averaged over the seeds). * = p < {ALPHA} with n >= {MIN_SEEDS_FOR_MARK} seeds (never below).",
        "",
        "| variant | what changes | vs | n | " + " | ".join(f"{m} | lift [95% CI], p" for m in ABLATION_METRICS) + " | NDCG@5 p (users) |",
        "|---|---|---|---|" + "---|---|" * len(ABLATION_METRICS) + "---|",
    ]
    for name, runs in variants.items():
        base, ls = gains.get(name, ("–", []))
        by_metric = {x.metric: x for x in ls}
        cells = []
        for metric in ABLATION_METRICS:
            mean, std = runs.mean_std(metric)
            x = by_metric.get(metric)
            cells.append(f"{mean:.4f} ± {std:.4f}" if len(runs.seeds) > 1 else f"{mean:.4f}")
            cells.append(f"{_pct(x.relative)} [{_pct(x.ci[0])}, {_pct(x.ci[1])}], {_p(x.p_seeds, x.n)}" if x else "–")
        n = ls[0].n if ls else 0
        p_users = by_metric["NDCG@5"].p_users if "NDCG@5" in by_metric else None
        lines.append(f"| {name} | {described.get(name, '')} | {base} | {n} | " + " | ".join(cells) + f" | {_p(p_users, n)} |")
    missing = [v for v in described if v not in variants]
    if missing:
        lines += ["", f"Not run yet: {', '.join(missing)} (`lrd matrix status --dataset {paths.dataset}`)."]
    return "\n".join(lines) + "\n"


def report_ablations(paths: Paths, described: dict[str, str], bases: dict[str, str | None],
                     seeds_of: Callable[[str], Iterable[int]] | None = None, joint: str = "",
                     differs: Callable[[str, dict], list[str]] | None = None) -> None:
    """reports/<ds>/ablations.md: each variant of `described` (name -> what it changes) with its lift,
    then `joint` (the joint models' relations, lrd.discover.joint)."""
    variants = load_runs(paths, list(described), seeds_of, differs)
    base_runs = load_runs(paths, sorted({b for b in bases.values() if b}), seeds_of, differs)
    gains = lifts(paths, variants, bases, base_runs)
    with atomic_path(paths.reports / "ablations.md") as tmp:
        tmp.write_text(ablations_markdown(paths, variants, gains, described) + joint)


def paper_table(results: dict[str, dict[str, ModelRuns]], model_names: list[str]) -> str:
    """Datasets x metrics by models, test means (n seeds), as the paper lays out its main table."""
    shown = [m for m in model_names if any(m in r for r in results.values())]
    if not shown:  # a table with no model column is not Markdown
        return "# Results\n\nNo finished run of the models params.yaml lists (`train.models`, `lrd_models`, `static_models`).\n"
    lines = ["# Results", "", "Test means over the seeds each model has (n in brackets); per-dataset details, "
             "spreads and significance in reports/<dataset>/results.md.", "",
             "| dataset | metric | " + " | ".join(shown) + " |", "|---|---|" + "---|" * len(shown)]
    for ds, models in results.items():
        for metric in PAPER_METRICS:
            cells = [f"{models[m].mean_std(metric)[0]:.4f} ({len(models[m].seeds)})" if m in models else "–" for m in shown]
            lines.append(f"| {ds} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

