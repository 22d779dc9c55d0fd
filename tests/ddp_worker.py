"""One DDP rank for tests/test_distributed.py, started by torchrun in a folder that holds the tiny
dataset and a params.yaml: `ddp_worker.py <seed> <model>... [--die-in-epoch N | --hang-in-epoch N]`
trains each model through its stage entry (as `stages/run train` would, errors included).

--die-in-epoch N: rank 1 exits in the middle of epoch N; --hang-in-epoch N: rank 1 stops
answering there. Every rank lists the files it moved into place (every output is written by
one atomic rename) in renames-<rank>.txt.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from lrd.config.base import load_params  # noqa: E402
from lrd.stage import run_stage  # noqa: E402
from lrd.train import batches  # noqa: E402
from stages import train, train_lrd  # noqa: E402

torch.set_num_threads(1)
RANK = int(os.environ["RANK"])
renames = open(f"renames-{RANK}.txt", "a")  # noqa: SIM115


def audit(event, args):
    if event in ("os.rename", "os.replace"):
        renames.write(f"{args[1]}\n")
        renames.flush()


sys.addaudithook(audit)

args = sys.argv[1:]
fault = None
if args[-2:-1] and args[-2].startswith("--"):
    fault, at_epoch = args[-2], int(args[-1])
    args = args[:-2]
seed, models = int(args[0]), args[1:]

if fault and RANK == 1:
    real_epoch, calls = batches.TrainingData.epoch, []

    def faulty_epoch(self, *a, **k):
        calls.append(1)
        for i, batch in enumerate(real_epoch(self, *a, **k)):
            if len(calls) == at_epoch and i == 1:
                if fault == "--die-in-epoch":
                    os._exit(3)
                time.sleep(3600)
            yield batch

    batches.TrainingData.epoch = faulty_epoch

if len(models) > 1:  # one group for all the runs (see lrd.train.distributed.session)
    torch.distributed.init_process_group("gloo")
for name in models:
    stage = train_lrd if load_params()["models"][name].get("lrd") else train
    run_stage(stage.__name__.split(".")[-1], lambda params, stage=stage, name=name: stage.run(params, "tiny", name, seed))
