"""What every stage's typed config shares: reading params.yaml, building a frozen dataclass
from its mapping with key, type and range checks, and the top-level settings several stages read.

One module per stage group (datasets, ingest, embed, train) so that a stage's code
dependencies (dvc.yaml) name only the configs it reads. The dataclasses are the one place that
holds defaults (params.yaml repeats them so that DVC tracks them and `dvc exp run -S` can set
them; a test keeps the two equal). Unknown keys, wrong types and out-of-range numbers are
reported with their dotted path in params.yaml and the valid range.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lrd.errors import ConfigError

T = TypeVar("T")

# Top-level keys of params.yaml; anything else is a typo (`trian:`) and an error.
SECTIONS = ("seed", "datasets", "ingest", "embed", "dim", "history_max", "model_relations", "discover", "models", "train")


# params.yaml is a few KiB; a file this large is the wrong one (`--params /dev/zero` would fill the memory)
MAX_PARAMS_BYTES = 1 << 20


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """params.yaml as a mapping; what is not a params file at all (missing, a folder or device, huge,
    not UTF-8, not YAML) is one line naming it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} not found: run from the repository root or pass --params")
    if not path.is_file():
        raise ConfigError(f"{path} is not a regular file: pass --params with a params.yaml")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PARAMS_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror}); pass --params with a params.yaml") from None
    if len(data) > MAX_PARAMS_BYTES:
        raise ConfigError(f"{path} is over {MAX_PARAMS_BYTES >> 20} MiB, more than a params.yaml: is it the right file?")
    try:
        params = yaml.safe_load(data.decode("utf-8")) or {}
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}: line {line} is not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
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
    if hint is float and isinstance(value, str):
        try:  # YAML reads `1e-3` as a string
            value = float(value)
        except ValueError:
            pass
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):  # .inf / .nan would pass every range check and fail later, far away
            raise ConfigError(f"params.yaml: `{where}` is {value!r}; it must be a finite number")
        return float(value)
    if isinstance(hint, type) and isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"params.yaml: `{where}` must be {getattr(hint, '__name__', hint)}, got {value!r}")


# --------------------------------------------------------------------------------------------
# settings several stages share (top level of params.yaml)

RelationKind = typing.Literal["item-item", "attribute"]


@dataclasses.dataclass(frozen=True)
class Shared:
    seed: int = param(2019, ge=0, lt=2**31)
    dim: int = param(64, ge=1, le=4096)  # beyond: memory, not modelling
    history_max: int = param(20, ge=1, le=1000)
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
