"""torchrun, with a failed rank reported in one line (the rank's own error line is above it)
instead of torch's ChildFailedError dump: `python -m lrd.train.launch <torchrun args>`."""

import sys

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import parse_args, run

if __name__ == "__main__":
    try:
        run(parse_args(sys.argv[1:]))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        print(f"training failed: rank {rank} exited with status {failure.exitcode}; earlier outputs are left as they were",
              file=sys.stderr)
        sys.exit(1)
