"""The relation readout as a person reads it: a Markdown page (per type: size, sources, coherence
over chance with its CI, top titled pairs; the known relations' recall) and a chart of each
type's coherence against the random and co-occurring baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from lrd.discover.readout import read_latent, readout_for
from lrd.io import atomic_path


def _f(x, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def confident_rule(readout: dict) -> str:
    rule = f"probability >= {readout['min_probability']:g}"
    return rule if readout.get("min_strength") is None else f"{rule} and strength >= {readout['min_strength']:g}"


def readout_markdown(readout: dict, title: str, top: int = 5) -> str:
    """One readout (discover's or the joint model's pairs) as Markdown."""
    shown = readout["attributes_shown"]
    base = readout["baselines"]
    lines = [f"## {title}", "",
             f"{readout['pairs']:,} labelled pairs, {readout['confident']:,} confident ({confident_rule(readout)}); "
             f"{readout['types_used']} of {len(readout['types'])} latent types carry confident pairs, "
             f"{readout['types_above_chance']} of them above chance (lower CI bound of the lift over random pairs > 1) on some attribute.", "",
             "Share of pairs whose items share the attribute: " +
             "; ".join(f"{a}: random {_f(base['random'].get(a), 3)}, co-occurring {_f(base['cooccur'].get(a), 3)}" for a in shown) +
             " (co-occurring: an item and the user's next train item)" +
             f". CI: {readout['ci_method']}.", ""]
    if shown:
        header = "| type | description | confident pairs | cooccur / knn / both | " + " | ".join(f"{a}: share, lift vs random [95% CI], vs co-occurring" for a in shown) + " |"
        lines += [header, "|" + "---|" * (4 + len(shown))]
    else:
        lines += ["| type | description | confident pairs | cooccur / knn / both |", "|---|---|---|---|"]
    for t in readout["types"]:
        s = t["sources"]
        cells = [t["name"], t.get("description", ""), f"{t['confident']:,} of {t['pairs']:,}", f"{s['cooccur']:,} / {s['knn']:,} / {s['both']:,}"]
        for a in shown:
            if not t["confident"]:
                cells.append("-")
                continue
            x = t["attributes"][a]
            ci = x["lift_random_ci"]
            mark = " **above**" if ci and ci[0] > 1 else " *below*" if ci and ci[1] < 1 else ""
            cells.append(f"{_f(x['share'], 3)}, {_f(x['lift_random'])} [{_f(ci and ci[0])}, {_f(ci and ci[1])}]{mark}, {_f(x['lift_cooccur'])}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += strength_markdown(readout) + item_item_markdown(readout)
    known = readout.get("known")
    if known:
        where = ", ".join(f"{k} {v} ({_f(known['type_lift'][k], 1)}x its share of confident pairs)" for k, v in known["types"].items()) or "none"
        lines += ["", f"**Known relations** (film series, `lrd/discover/known_relations/`): {known['found']} of {known['matched']} "
                      f"matched pairs confident at p >= {known['min_probability']:g} (recall {_f(known['recall'], 3)}, against "
                      f"{_f(known['confident_share_of_pairs'], 3)} of all labelled pairs); {known['candidates']} are candidate pairs at all; "
                      f"found in: {where}."]
        if known["found_pairs"]:
            lines += ["", "Found: " + "; ".join(known["found_pairs"][:20]) + "."]
    lines += ["", "### Top pairs per type", "",
              "Strongest first (most probable where the table has no strength), then by item ids.", ""]
    for t in readout["types"]:
        if not t["confident"]:
            continue
        lines += [f"**{t['name']}**: {t.get('description', '')}", "", "| head | tail | probability | strength | source |", "|---|---|---|---|---|"]
        lines += [f"| {p['head_title']} | {p['tail_title']} | {p['probability']:.4f} | {_f(p.get('strength'))} | {p['source']} |"
                  for p in t["top_pairs"][:top]]
        lines.append("")
    unused = [t["name"] for t in readout["types"] if not t["confident"]]
    if unused:
        lines += [f"Types without confident pairs: {', '.join(unused)}.", ""]
    return "\n".join(lines)


def _share(share: float, ci: list) -> str:
    return f"{share:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def strength_markdown(readout: dict) -> list[str]:
    """Per used type, the share of its pairs sharing its signature attribute per strength decile."""
    rows = [t for t in readout["types"] if t["confident"] and "strength_deciles" in t]
    if not rows:
        return []
    lines = ["", f"**Strength** (lrd/discover/strength.py): the share of each type's pairs (all of them) that share its signature "
                 f"attribute (the highest lift over random), per strength decile, strongest first (95% Wilson CI). "
                 f"{readout['types_strength_ordered']} of {readout['types_used']} used types: the top decile's CI lies above the bottom one's.",
             "", "| type | attribute | top decile | bottom decile | top above bottom | deciles, strongest first |", "|---|---|---|---|---|---|"]
    for t in rows:
        d = t["strength_deciles"]
        lines.append(f"| {t['name']} | {d['attribute']} | {_share(d['share'][0], d['ci'][0])} | {_share(d['share'][-1], d['ci'][-1])} | "
                     f"{'yes' if d['top_above_bottom'] else 'no'} | {' '.join(f'{x:.2f}' for x in d['share'])} |")
    return lines


def item_item_markdown(readout: dict) -> list[str]:
    """Per latent type, the share of its pairs that are predefined item-item pairs (complement, substitute) against all candidate pairs."""
    item_item = readout.get("item_item")
    if not item_item:
        return []
    kinds = list(item_item["base"])
    lines = ["", "**Predefined item-item relations** (either direction) among each type's pairs, against their share of all "
                 "labelled pairs: " + "; ".join(f"{k} {item_item['base'][k]:.3f}" for k in kinds) + ". Share [95% Wilson CI], lift [CI].",
             "", "| type | pairs | " + " | ".join(kinds) + " |", "|---|---|" + "---|" * len(kinds)]
    for t in readout["types"]:
        cells = item_item["types"].get(t["name"], {})
        if not t["pairs"]:
            continue
        lines.append(f"| {t['name']} | {t['pairs']:,} | " + " | ".join(
            f"{_share(cells[k]['share'], cells[k]['ci'])}, x{_f(cells[k]['lift'])} [{_f(cells[k]['lift_ci'][0])}, {_f(cells[k]['lift_ci'][1])}]"
            for k in kinds) + " |")
    return lines


def readout_chart(readout: dict, title: str, path: Path) -> None:
    """Per shown attribute, each used type's share with its Wilson CI, and the two baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = readout["attributes_shown"] or ["(no attributes)"]
    used = [t for t in readout["types"] if t["confident"]]
    fig, axes = plt.subplots(1, len(shown), figsize=(max(5, 1 + 0.6 * max(len(used), 1)) * len(shown), 4), squeeze=False)
    for ax, a in zip(axes[0], shown):
        if used and a in used[0].get("attributes", {}):
            share = np.array([t["attributes"][a]["share"] for t in used])
            ci = np.array([t["attributes"][a]["ci"] for t in used])
            x = np.arange(len(used))
            ax.errorbar(x, share, yerr=[share - ci[:, 0], ci[:, 1] - share], fmt="o", capsize=4, label="type (95% Wilson CI)")
            ax.set_xticks(x, [f"{t['name']}\n{t.get('description', '')}" for t in used], rotation=45, ha="right", fontsize=7)
            for base, style, label in (("random", "--", "random item pairs"), ("cooccur", ":", "an item and the user's next item")):
                b = readout["baselines"][base].get(a)
                if b is not None:
                    ax.axhline(b, linestyle=style, color="grey", label=label)
        else:
            ax.text(0.5, 0.5, "no type has confident pairs", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"share of pairs sharing {a}")
        ax.set_ylim(0, 1)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def write_relations_report(paths, tables, dataset: str, min_probability: float) -> dict | None:
    """reports/<ds>/relations.md and relations.png from discover's pairs, plus the joint model's
    relabelled pairs where there are any. Returns discover's readout (None before discover)."""
    if not paths.latent.exists() or not paths.relation_types.exists():
        return None
    relation_types = pq.read_table(paths.relation_types)
    readout = readout_for(tables, relation_types, read_latent(paths.latent, "discover"), dataset, min_probability)
    page = [f"# Discovered relations: {dataset}", "", readout_markdown(readout, "discover (latent.parquet)")]
    if paths.latent_joint.exists() and pq.ParquetFile(paths.latent_joint).metadata.num_rows:
        joint = readout_for(tables, relation_types, read_latent(paths.latent_joint, "compare"), dataset, min_probability)
        page.append(readout_markdown(joint, "the best +LRD run's relabelled pairs (latent_joint.parquet)"))
    with atomic_path(paths.reports / "relations.md") as tmp:
        tmp.write_text("\n".join(page))
    with atomic_path(paths.reports / "relations.png") as tmp:
        readout_chart(readout, f"{dataset}: coherence of each latent type's confident pairs", tmp)
    return readout
