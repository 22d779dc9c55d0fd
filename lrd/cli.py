"""The `lrd` command: tools for looking into what the pipeline produced.

Run from the repository root (it reads params.yaml to find the current dataset and model).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from lrd.errors import LRDError


class _Group(click.Group):
    """Turn LRDError into one clean line instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LRDError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)


params_option = click.option(
    "--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False), help="params.yaml to read."
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """LRD pipeline tools. The pipeline itself runs with `dvc repro`.

    \b
    Examples:
      lrd neighbors "Toy Story" --k 10
      lrd sql "SELECT kind, count(*) FROM relation_types GROUP BY kind"
      lrd relations show --type 28 --limit 20
    """


def _context(params_path: str):
    from lrd.config import EmbedConfig, dataset_config, load_params

    params = load_params(params_path)
    return params, dataset_config(params), EmbedConfig.from_params(params)


def _store(params_path: str):
    from lrd.embed.store import EmbeddingStore, store_dir

    _, dataset, embed = _context(params_path)
    return EmbeddingStore.open(store_dir(dataset.name, embed)), dataset


def _titles(dataset) -> dict[int, str]:
    from lrd.io import read_parquet

    items = read_parquet(dataset.processed_dir / "items.parquet", "ingest", columns=["item", "title", "text"])
    titles = items.column("title").to_pylist()
    texts = items.column("text").to_pylist()
    return {i: (t or x) for i, t, x in zip(items.column("item").to_pylist(), titles, texts)}


def _resolve_item(query: str, titles: dict[int, str]) -> int:
    if query.isdigit():
        item = int(query)
        if item not in titles:
            raise click.BadParameter(f"no item with id {item} (ids run 1..{max(titles)})", param_hint="ITEM")
        return item
    q = query.lower()
    hits = [i for i, t in titles.items() if t and q in t.lower()]
    if not hits:
        raise click.BadParameter(f"no item title contains {query!r}", param_hint="ITEM")
    exact = [i for i in hits if titles[i].lower() == q]
    if len(hits) > 1 and not exact:
        more = ", ".join(f"{i} {titles[i]!r}" for i in hits[:5])
        click.echo(f"{len(hits)} titles match; using the first ({more}{', ...' if len(hits) > 5 else ''})", err=True)
    return (exact or hits)[0]


@main.command()
@click.argument("item", required=False)
@click.option("--k", default=10, show_default=True, help="How many neighbours.")
@click.option("--text", "free_text", help="Search with free text instead of an item (encodes it with the store's model).")
@params_option
def neighbors(item: str | None, k: int, free_text: str | None, params_path: str) -> None:
    """Nearest items to ITEM (an item id or a title substring) in the embedding store."""
    store, dataset = _store(params_path)
    titles = _titles(dataset)
    if free_text:
        ids, scores = store.search(store.encode_query(free_text), k)
        click.echo(f"nearest to {free_text!r} ({store.manifest['model']}):")
    elif item:
        query = _resolve_item(item, titles)
        ids, scores = store.neighbors([query], k)
        click.echo(f"nearest to {query} {titles[query]!r} ({store.manifest['model']}):")
    else:
        raise click.UsageError("give an ITEM or --text")
    for rank, (i, s) in enumerate(zip(ids[0], scores[0]), start=1):
        if i:
            click.echo(f"{rank:>3}  {i:>7}  {s:6.3f}  {titles.get(int(i), '')}")


@main.command("embed-info")
@params_option
def embed_info(params_path: str) -> None:
    """Print the manifest of the current embedding store."""
    store, _ = _store(params_path)
    click.echo(json.dumps(store.manifest, indent=2))
