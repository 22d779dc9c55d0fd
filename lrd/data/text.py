"""Item text for the LLM, rendered from a template in params.yaml.

Template syntax: `{column}` is replaced by the item's value (lists joined with ", "); a part in
square brackets is dropped when any column inside it is empty, so
`"{title}[ ({year})][. Genres: {genres}]"` gives "Toy Story (1995). Genres: Animation, Comedy"
and just "Toy Story" for an item with neither year nor genres.
"""

from __future__ import annotations

import hashlib
import re

import pyarrow as pa

from lrd.errors import ConfigError

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")


def template_fields(template: str) -> list[str]:
    return _FIELD.findall(template)


def check_template(template: str, columns: list[str]) -> None:
    missing = [f for f in template_fields(template) if f not in columns]
    if missing:
        raise ConfigError(
            f"params.yaml: `ingest.text_template` refers to {', '.join(missing)}, which this dataset's "
            f"items do not have; available: {', '.join(columns)}"
        )
    if not template_fields(template):
        raise ConfigError("params.yaml: `ingest.text_template` must use at least one {column}")


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value if v not in (None, ""))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def render(template: str, row: dict) -> str:
    def optional(match: re.Match) -> str:
        part = match.group(1)
        if any(_as_text(row.get(f)) == "" for f in _FIELD.findall(part)):
            return ""
        return part

    text = _OPTIONAL.sub(optional, template)
    return " ".join(_FIELD.sub(lambda m: _as_text(row.get(m.group(1))), text).split())


def render_texts(items: pa.Table, template: str) -> list[str]:
    """One text per item row (a Python loop over items, never over interactions)."""
    check_template(template, items.column_names)
    columns = {f: items.column(f).to_pylist() for f in set(template_fields(template))}
    return [render(template, {f: col[i] for f, col in columns.items()}) for i in range(items.num_rows)]


def template_hash(template: str) -> str:
    return hashlib.sha256(template.encode()).hexdigest()[:16]
