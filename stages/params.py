"""params: check params.yaml as a whole (lrd.config.check); every other stage depends on its
output, whose content does not change while params.yaml stays valid."""

from lrd.config.check import CHECKED, CONTENT, check_params
from lrd.io import atomic_path
from lrd.stage import run_stage


def run(params: dict) -> None:
    check_params(params)
    if not CHECKED.exists() or CHECKED.read_text() != CONTENT:
        with atomic_path(CHECKED) as tmp:
            tmp.write_text(CONTENT)


if __name__ == "__main__":
    run_stage("params", run)
