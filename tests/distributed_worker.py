"""One rank of tests/test_distributed.py's second launch (not a test module itself).

`RANK=r WORLD_SIZE=2 MASTER_ADDR=... MASTER_PORT=... python tests/distributed_worker.py OUT_JSON COMMANDS_JSON`
initialises one gloo process group, then runs several `aekit train` commands in it (each
command sees the group already up, so it neither re-initialises nor destroys it) and writes every
command's exit code and stderr to OUT_JSON.RANK.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys

faulthandler.dump_traceback_later(240, exit=True)  # a deadlock fails the test instead of hanging it

import torch.distributed as dist  # noqa: E402

from cli_helpers import cli  # noqa: E402


def main() -> None:
    out_json, commands = sys.argv[1], json.loads(sys.argv[2])
    dist.init_process_group("gloo", init_method="env://")
    results = []
    for argv in commands:
        code, out, err = cli(*argv)
        results.append({"argv": argv, "code": code, "stdout": out, "stderr": err})
    with open(f"{out_json}.{os.environ['RANK']}", "w") as f:
        json.dump(results, f)
    from worker_exit import end_worker

    end_worker()


if __name__ == "__main__":
    main()
