"""The paper-style results table: models by rows, HR/NDCG@5/10/20 as mean ± std over seeds,
and the relative improvement of each +LRD (or static) model over its base model."""

from __future__ import annotations

import csv
import io
from pathlib import Path

METRICS = ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20")


def base_model(name: str, summaries: dict[str, dict]) -> str | None:
    """The plain model of the same architecture, for +LRD and static variants."""
    s = summaries[name]
    if not (s.get("lrd") or s.get("static_latent")):
        return None
    for other, o in summaries.items():
        if o["arch"] == s["arch"] and not o.get("lrd") and not o.get("static_latent"):
            return other
    return None


def improvements(summaries: dict[str, dict]) -> dict[str, dict[str, float]]:
    out = {}
    for name in summaries:
        base = base_model(name, summaries)
        if base:
            out[name] = {
                m: 100.0 * (summaries[name]["test"][m] - summaries[base]["test"][m]) / summaries[base]["test"][m]
                for m in METRICS if summaries[base]["test"][m]
            }
    return out


def results_csv(summaries: dict[str, dict]) -> str:
    gains = improvements(summaries)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "base", "seeds"] + [f"{m} {k}" for m in METRICS for k in ("mean", "std")] + [f"{m} gain %" for m in METRICS])
    for name, s in summaries.items():
        w.writerow(
            [name, base_model(name, summaries) or "", len(s["seeds"])]
            + [f"{s[key][m]:.4f}" for m in METRICS for key in ("test", "test_std")]
            + [f"{gains[name][m]:+.2f}" if name in gains else "" for m in METRICS]
        )
    return buf.getvalue()


def results_markdown(summaries: dict[str, dict], dataset: str) -> str:
    gains = improvements(summaries)
    seeds = sorted({len(s["seeds"]) for s in summaries.values()})
    lines = [
        f"# Results on {dataset}",
        "",
        f"Test split, 1 held-out item + 99 stored negatives per user; mean ± std over {'/'.join(map(str, seeds))} seed(s); "
        "best dev NDCG@5 epoch. Ties count against the held-out item.",
        "",
        "| model | " + " | ".join(METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for name, s in summaries.items():
        cells = [f"{s['test'][m]:.4f} ± {s['test_std'][m]:.4f}" for m in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if gains:
        lines += ["", "Relative change of each LRD / static variant over its base model (test, means):", "",
                  "| model | vs | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
        for name, g in gains.items():
            lines.append(f"| {name} | {base_model(name, summaries)} | " + " | ".join(f"{g.get(m, 0):+.2f}%" for m in METRICS) + " |")
    lines += ["", "| model | seeds | best epochs | s / epoch | relation channels | parameters |", "|---|---|---|---|---|---|"]
    for name, s in summaries.items():
        epochs = ", ".join(str(r["best_epoch"]) for r in s["per_seed"])
        spe = sum(r["seconds_per_epoch"] for r in s["per_seed"]) / len(s["per_seed"])
        lines.append(f"| {name} | {len(s['seeds'])} | {epochs} | {spe:.1f} | {s['relation_channels']} | {s['parameters']:,} |")
    return "\n".join(lines) + "\n"


def bar_chart(summaries: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(summaries)
    x = np.arange(len(METRICS))
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for i, name in enumerate(names):
        s = summaries[name]
        ax.bar(x + i * width, [s["test"][m] for m in METRICS], width, yerr=[s["test_std"][m] for m in METRICS], label=name, capsize=2)
    ax.set_xticks(x + width * (len(names) - 1) / 2, METRICS)
    ax.set_ylabel("test score")
    ax.set_title("HR@K / NDCG@K over 100 candidates (mean ± std over seeds)")
    ax.legend(ncol=min(len(names), 6), fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
