"""``torchrun ... tests/_slow_rank.py SECONDS pretrain STORE --out DBN --distributed ...``: one rank of a launch
whose every exchange between ranks first sleeps SECONDS (injected by the test, not a hook in beatdbn), so
that a test can kill a launcher mid-pass. What the ranks compute is unchanged: only when.

With ``BEATDBN_TEST_EXCHANGES=PATH`` in the environment, each exchange also appends one line to PATH (a test
counts the rounds a resumed run made). When the command ends, a process group beatdbn left up is recorded
(``BEATDBN_TEST_LEFT_UP=PATH``: one line per rank) and destroyed here: a gloo group left to the interpreter's
exit aborted its rank now and then ("terminate called without an active exception", exit -6), and its
launcher then waited minutes for it.
"""

import os
import sys
import time

import beatdbn.train.ranks as ranks_module

delay = float(sys.argv.pop(1))
exchange = ranks_module.Ranks.exchange


def slow_exchange(self, *args, **kwargs):
    time.sleep(delay)
    count = os.environ.get("BEATDBN_TEST_EXCHANGES")
    if count:
        with open(count, "a") as f:
            f.write(f"{self.rank}\n")
    return exchange(self, *args, **kwargs)


ranks_module.Ranks.exchange = slow_exchange

from beatdbn.cli import main  # noqa: E402  (after the patch)

if __name__ == "__main__":
    sys.argv[0] = "beatdbn"
    try:
        main()
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            left = os.environ.get("BEATDBN_TEST_LEFT_UP")
            if left:
                with open(left, "a") as f:
                    f.write(f"rank {dist.get_rank()}\n")
            dist.destroy_process_group()
