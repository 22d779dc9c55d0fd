"""Item text for the LLM, rendered from a template in params.yaml.

Template syntax: `{column}` is replaced by the item's value (lists joined with ", "); a part in
square brackets is dropped when any column inside it is empty, so
`"{title}[ ({year})][. Genres: {genres}]"` gives "Toy Story (1995). Genres: Animation, Comedy"
and just "Toy Story" for an item with neither year nor genres. When the template starts with a
column that is empty (an Amazon item without a title), the separator left at the front goes
too: "Category: Staplers. Brand: Acme", not ". Category: Staplers. Brand: Acme".
"""

from __future__ import annotations

import hashlib
import re

import pyarrow as pa

from lrd.errors import ConfigError

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_LEADING_FIELD = re.compile(r"^\s*\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SEPARATORS = " .,;:|/-"


def template_fields(template: str) -> list[str]:
    return _FIELD.findall(template)


def check_template(template: str, columns: list[str], param: str = "ingest.text_template") -> None:
    """`param` names the setting in errors (embed passes "embed.text_template")."""
    missing = [f for f in template_fields(template) if f not in columns]
    if missing:
        raise ConfigError(
            f"params.yaml: `{param}` refers to {', '.join(missing)}, which this dataset's "
            f"items do not have; available: {', '.join(columns)}"
        )
    if not template_fields(template):
        raise ConfigError(f"params.yaml: `{param}` must use at least one {{column}}, e.g. \"{{title}}\"")


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
    text = " ".join(_FIELD.sub(lambda m: _as_text(row.get(m.group(1))), text).split())
    leading = _LEADING_FIELD.match(template)
    if leading and _as_text(row.get(leading.group(1))) == "":
        text = text.lstrip(_SEPARATORS)
    return text


def render_texts(items: pa.Table, template: str, param: str = "ingest.text_template") -> list[str]:
    """One text per item row (a Python loop over items, never over interactions)."""
    check_template(template, items.column_names, param)
    columns = {f: items.column(f).to_pylist() for f in set(template_fields(template))}
    return [render(template, {f: col[i] for f, col in columns.items()}) for i in range(items.num_rows)]


def template_hash(template: str) -> str:
    return hashlib.sha256(template.encode()).hexdigest()[:16]
