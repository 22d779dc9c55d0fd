"""The shape of the code base: imports only go down the layers of docs/architecture.md, every
artefact path comes from lrd.paths and dvc.yaml spells the same ones, and the defaults in the
typed configs are the values params.yaml shows."""

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

from lrd.compare import CHARTS
from lrd.config.base import SHARED_KEYS, Shared
from lrd.config.embed import EmbedConfig
from lrd.config.ingest import IngestConfig
from lrd.config.train import DiscoverConfig, TrainConfig
from lrd.paths import Paths

REPO = Path(__file__).resolve().parents[1]

# Lowest first; a module may import from its own layer and the ones above it in this list.
LAYERS = [
    ("foundation", ["lrd.errors", "lrd.paths", "lrd.keys", "lrd.schemas", "lrd.io", "lrd.format", "lrd.cluster"]),
    ("config", ["lrd.config"]),
    ("data", ["lrd.data"]),
    ("embed", ["lrd.embed"]),
    ("model data", ["lrd.graph", "lrd.sequences", "lrd.temporal", "lrd.evaluate"]),
    ("models", ["lrd.models"]),
    ("train", ["lrd.train"]),
    ("discover", ["lrd.discover"]),
    ("experiments", ["lrd.experiment", "lrd.compare", "lrd.runlock", "lrd.matrix"]),
    ("interfaces", ["lrd.sql", "lrd.cli", "lrd.stage"]),
]


def layer_of(module: str) -> int | None:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    out = set()
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            out |= {f"{base}.{a.name}" if layer_of(f"{base}.{a.name}") is not None else base for a in node.names}
    return {m for m in out if m == "lrd" or m.startswith("lrd.")}


LIBRARY = sorted((REPO / "lrd").rglob("*.py"))


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_only_go_down_the_layers(path):
    me = module_name(path)
    if me == "lrd":
        return
    mine = layer_of(me)
    assert mine is not None, f"{me} belongs to no layer: add it to LAYERS here and to docs/architecture.md"
    upward = {m: LAYERS[layer_of(m)][0] for m in imports(path) if layer_of(m) is not None and layer_of(m) > mine}
    assert not upward, f"{me} ({LAYERS[mine][0]}) imports from a higher layer: {upward}"


def test_architecture_doc_names_every_layer():
    doc = (REPO / "docs/architecture.md").read_text()
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            assert f"`{prefix.removeprefix('lrd.').replace('.', '/')}" in doc, prefix


def _dvc_stages() -> dict[str, dict]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def _entries(stage: dict, *keys: str) -> set[str]:
    return {next(iter(e)) if isinstance(e, dict) else e for key in keys for e in stage.get(key, [])}


def test_dvc_yaml_declares_the_paths_the_code_writes():
    declared = set().union(*(_entries(s, "deps", "outs", "metrics", "plots") for s in _dvc_stages().values()))
    for ds in ("${key}", "${item.dataset}"):
        p = Paths(ds)
        per_dataset = {p.raw, p.processed, p.embeddings, p.embed_identity, p.embed_metrics, p.latent, p.relation_types, p.latent_joint, p.discover_model,
                       p.discover_metrics, p.discover_curve, p.reports, p.results_metrics} if ds == "${key}" else {
            p.run_model("${item.model}", "${item.seed}"), p.run_ranks("${item.model}", "${item.seed}"),
            p.run_metrics("${item.model}", "${item.seed}"), p.run_curve("${item.model}", "${item.seed}"),
            p.run_relations("${item.model}", "${item.seed}")}
        for path in per_dataset:
            assert str(path) in declared, f"{path} (lrd/paths.py) is not in dvc.yaml"
    assert str(Paths("x").summary_report) in declared


def _module_file(module: str) -> Path | None:
    path = REPO / Path(*module.split("."))
    return path / "__init__.py" if (path / "__init__.py").exists() else path.with_suffix(".py") if path.with_suffix(".py").exists() else None


def imported_files(module: str) -> set[Path]:
    """Every file of this project a module imports, transitively (function-level imports included)."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        file = _module_file(name)
        if name in seen or file is None:
            continue
        seen.add(name)
        package = name if file.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(file.read_text())):
            found = []
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                found = [f"{base}.{a.name}" if _module_file(f"{base}.{a.name}") else base for a in node.names]
            for m in found:
                parts = m.split(".")
                if parts[0] in ("lrd", "stages"):
                    todo += [".".join(parts[:i]) for i in range(1, len(parts) + 1)]  # parent packages run too
    return {_module_file(m).relative_to(REPO) for m in seen}


@pytest.mark.parametrize("name", sorted(_dvc_stages()))
def test_every_module_a_stage_imports_is_among_its_deps(name):
    stage = _dvc_stages()[name]
    script = stage["cmd"].split()[1]
    deps = [Path(d) for d in _entries(stage, "deps")]
    missing = sorted(str(f) for f in imported_files(f"stages.{script}") if not any(f == d or d in f.parents for d in deps))
    assert not missing, f"dvc.yaml stage {name} runs code it does not list as deps: {missing}"


def _defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


# Settings of the default dataset rather than defaults of the code.
DATASET_SPECIFIC = {("ingest", "text_template"), ("ingest", "attributes"), ("ingest", "kg_relations")}


@pytest.mark.parametrize("section,cls", [("ingest", IngestConfig), ("embed", EmbedConfig), ("discover", DiscoverConfig),
                                         ("train", TrainConfig)])
def test_params_yaml_shows_the_code_defaults(section, cls):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    defaults = _defaults(cls)
    for key, value in params[section].items():
        if (section, key) in DATASET_SPECIFIC or key in ("models", "lrd_models", "static_models", "ablation_models"):  # names of `models:` entries
            continue
        assert key in defaults, f"params.yaml `{section}.{key}` is not a field of {cls.__name__}"
        expected = _plain(defaults[key])
        if isinstance(expected, dict) and isinstance(value, dict):
            expected = {k: expected[k] for k in value}
        assert value == expected, f"params.yaml `{section}.{key}` is {value!r}, the code's default {expected!r}"
    for key in SHARED_KEYS:
        assert params[key] == _plain(_defaults(Shared)[key]), key


def test_every_dataset_has_its_charts_in_dvc_plots():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    for name in params["datasets"]:
        for chart in CHARTS:
            assert f"reports/{name}/{chart}.png" in plots, f"dvc.yaml `plots:` lacks reports/{name}/{chart}.png"


def test_dvc_exp_run_set_changes_only_the_line_it_sets(tmp_path):
    """`dvc exp run -S key=value` rewrites params.yaml through ruamel: the file is kept in the form
    that rewrite produces, so an experiment's params diff is the one line it set."""
    from dvc.utils.serialize import modify_yaml

    path = tmp_path / "params.yaml"
    before = (REPO / "params.yaml").read_text()
    path.write_text(before)
    with modify_yaml(path) as params:
        params["train"]["patience"] = 7
    after = path.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before.splitlines(), after) if a != b]
    assert len(after) == len(before.splitlines()) and len(changed) == 1 and "patience: 7" in changed[0][1]
