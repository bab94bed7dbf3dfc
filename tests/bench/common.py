"""What every part of make bench shares: failing loudly, running, timing."""

import subprocess
import sys
import time

MIB = 1024 * 1024
STEP_TIMEOUT = 900


class BenchError(Exception):
    pass


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(cmd, timeout=STEP_TIMEOUT, **kw):
    """Run a command; fail loudly on a non-zero exit."""
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    if p.returncode != 0:
        raise BenchError(f"{cmd[0]} exited {p.returncode}: "
                         f"{p.stderr.decode(errors='replace')[-2000:]}")
    return p


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
