#!/usr/bin/python3
"""Resource limits of the repository (issue 26): `repo add` of 20,000 packages in one call
under 200 MB of peak RSS, and `repo verify` of 100,000 packages under 20 s.

`limits.py BINARY` generates (or reuses) small packages with gen_debs.py: 500 x 40 for
the add, 2,500 x 40 for the verify (added in calls of 20,000, since one call's file
names would pass the kernel's argument limit). Figures:

1. add 20,000: peak RSS of one `repo add` into a new repository (its own rusage, from
   wait4), wall time beside it;
2. verify 100,000: `repo verify` once to stamp the pool, then the median of BENCH_RUNS
   runs of the fast path (size, times and inode per file) and of `--full` (every file
   read and hashed). The target is on the fast path; `--full` is reported.

Environment: BENCH_RUNS (3), BENCH_LIMITS_VERIFY_NAMES (2500).
"""

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import log  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ADD_RSS_TARGET_MB = 200
VERIFY_TARGET_S = 20.0
BATCH = 20000


def generate(names):
    """The pool directory of NAMES x 40 generated packages."""
    output = benchlib.run(["/usr/bin/python3", os.path.join(HERE, "gen_debs.py"),
                           benchlib.BENCH_DIR, "--names", str(names), "--versions", "40"])
    return os.path.join(output.strip().splitlines()[-1], "pool")


def peak_rss(argv, cwd=None):
    """Runs a command; its wall time (s) and peak RSS (MB) from its own rusage."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    errors = child.stderr.read().decode("utf-8", "replace")
    child.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise benchlib.CommandFailed(argv, os.waitstatus_to_exitcode(status), errors)
    return wall, usage.ru_maxrss / 1024


def new_repository(binary, name):
    root = os.path.join(benchlib.BENCH_DIR, name)
    benchlib.reset_dir(root)
    os.rmdir(root)
    benchlib.run([binary, "repo", "--repo", root, "init", "--arch", "amd64",
                  "--stages", "test,staging", "--origin", "bench"])
    return root


def add_command(binary, root, files):
    return [binary, "--quiet", "repo", "--repo", root, "add", "test", *files]


def main():
    binary = os.path.abspath(sys.argv[1])
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    log("limits: repo add of 20,000 packages (peak RSS), repo verify of 100,000 (time)")

    pool = generate(500)
    files = sorted(os.listdir(pool))
    root = new_repository(binary, "limits-add")
    wall, rss = peak_rss(add_command(binary, root, files), cwd=pool)
    met = rss < ADD_RSS_TARGET_MB
    log(f"  add {len(files)} packages in one call: peak RSS {rss:.0f} MB, {wall:.1f} s "
        f"(target < {ADD_RSS_TARGET_MB} MB: {benchlib.status(met)})")
    benchlib.record("repo add 20,000", "peak RSS", "-", None, rss, rss,
                    f"< {ADD_RSS_TARGET_MB} MB", met, unit="MB")

    names = int(os.environ.get("BENCH_LIMITS_VERIFY_NAMES", "2500"))
    pool = generate(names)
    files = sorted(os.listdir(pool))
    root = new_repository(binary, "limits-verify")
    for start in range(0, len(files), BATCH):
        benchlib.run(add_command(binary, root, files[start:start + BATCH]), cwd=pool)
    verify = [binary, "--quiet", "repo", "--repo", root, "verify"]
    benchlib.run(verify)  # stamps the pool
    figures = {}
    for label, argv in [("fast path", verify), ("--full", verify + ["--full"])]:
        figures[label] = statistics.median(benchlib.timed(argv) for _ in range(runs))
        log(f"  verify {len(files)} packages, {label}: median {figures[label]:.2f} s "
            f"of {runs}")
    met = figures["fast path"] < VERIFY_TARGET_S
    benchlib.record(f"repo verify {len(files):,}", "wall time", "-", None,
                    figures["fast path"], figures["fast path"], f"< {VERIFY_TARGET_S:.0f} s",
                    met)
    benchlib.record(f"repo verify --full {len(files):,}", "wall time", "-", None,
                    figures["--full"], figures["--full"], "(reported)", None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
