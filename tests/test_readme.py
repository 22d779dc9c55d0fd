"""The README's commands as a reader copies them: every `dvc exp run` line names a target (without
one DVC reproduces every pending stage, the training matrix included) and its `-S` values parse
as DVC parses them, set keys params.yaml has, and leave a params.yaml that passes the check."""

import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
EXP_RUNS = [line.split("   #")[0].strip() for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S)
            for line in block.splitlines() if line.startswith("dvc exp run")]


def test_the_readme_has_llm_swaps():
    assert len(EXP_RUNS) >= 3


@pytest.mark.parametrize("line", EXP_RUNS)
def test_each_dvc_exp_run_line_names_a_target_and_its_settings_parse(line, tmp_path):
    from dvc.utils.hydra import apply_overrides

    from lrd.config.base import load_params
    from lrd.config.check import check_params

    args = shlex.split(line)[3:]
    settings = [args[i + 1] for i, a in enumerate(args) if a in ("-S", "--set-param")]
    targets = [a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] not in ("-S", "--set-param"))]
    assert targets and all("@" in t for t in targets), f"{line}: name a stage, or every pending stage runs"
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    before = yaml.safe_load(params.read_text())
    apply_overrides(params, settings)  # DVC's own parser: "mismatched input" and the like fail here
    after = load_params(params)
    for setting in settings:
        section, key = setting.split("=", 1)[0].split(".", 1)
        assert key in before[section], f"{setting}: params.yaml has no {section}.{key}"
        assert after[section][key] != before[section][key]
    check_params(after)
