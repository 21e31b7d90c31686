"""Helpers shared by the benchmark scripts: timing, medians, the summary file, tables.

Standard library only: the benchmarks run with Debian's /usr/bin/python3 on a fresh
machine without any PyPI package.
"""

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

# Where generated data and results live (kept across runs; see each generator's key).
BENCH_DIR = os.environ.get("BENCH_DIR", os.path.join(os.getcwd(), "target", "bench"))
# How many times each timed command runs (the median is reported). At least 3.
RUNS = max(3, int(os.environ.get("BENCH_RUNS", "3")))


def log(message):
    """Progress for people, on stderr, so stdout holds only results."""
    print(message, file=sys.stderr, flush=True)


class CommandFailed(Exception):
    """A benchmarked or preparing command exited non-zero; carries its last output."""

    def __init__(self, argv, code, output):
        super().__init__(f"{display(argv)}: exit {code}: {summarize(output)}")
        self.code = code
        self.output = output


def summarize(output):
    """The line of a failed command's output that says what went wrong.

    The first line that mentions an error or a panic, else the last lines: a Rust
    backtrace ends with frames, not with the message.
    """
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    for index, line in enumerate(lines):
        lowered = line.lower()
        if "panicked" in lowered:
            return " ".join(lines[index : index + 2])[:400]
        if "error" in lowered or "not implemented" in lowered:
            return line[:400]
    return " | ".join(lines[-3:])[:400]


def display(argv):
    """A command line as one readable string (shortened when it lists many files)."""
    if isinstance(argv, str):
        return argv if len(argv) < 200 else argv[:200] + " ..."
    words = [str(word) for word in argv]
    if len(words) > 8:
        words = words[:6] + [f"... ({len(words) - 6} more)"]
    return " ".join(words)


def run(argv, env=None, cwd=None, shell=False):
    """Runs a command untimed; raises CommandFailed with its output when it fails."""
    completed = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        shell=shell,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    output = completed.stdout.decode("utf-8", "replace")
    if completed.returncode != 0:
        raise CommandFailed(argv, completed.returncode, output)
    return output


def run_max_rss(argv, env=None, cwd=None):
    """Runs a command untimed (fails like `run`) and returns its peak resident set size
    in bytes: the largest of the process and its waited-for descendants (wait4's
    ru_maxrss, what `/usr/bin/time` prints as maximum resident set size)."""
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    output = process.stdout.read()
    process.stdout.close()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise CommandFailed(argv, process.returncode, output.decode("utf-8", "replace"))
    return usage.ru_maxrss * 1024


def timed(argv, env=None, cwd=None, shell=False):
    """Runs a command once and returns its wall time in seconds (fails like `run`)."""
    start = time.perf_counter()
    run(argv, env=env, cwd=cwd, shell=shell)
    return time.perf_counter() - start


class Measure:
    """The wall times of one command over several runs."""

    def __init__(self, name):
        self.name = name
        self.times = []
        self.cpu_times = []
        self.error = None

    @property
    def median(self):
        """The median wall time, or None when the command failed."""
        if self.error is not None or not self.times:
            return None
        return statistics.median(self.times)

    @property
    def cpu_median(self):
        """The median CPU time (user + system of the command and its children)."""
        if self.error is not None or not self.cpu_times:
            return None
        return statistics.median(self.cpu_times)

    def describe(self):
        """`1.23 s (min 1.20 s, max 1.30 s, 3 runs; CPU 2.1 s)` or the error."""
        if self.error is not None:
            return f"not available ({self.error})"
        low, high = min(self.times), max(self.times)
        return (f"{seconds(self.median)} (min {seconds(low)}, max {seconds(high)},"
                f" {len(self.times)} runs; CPU user+sys {seconds(self.cpu_median)})")


def paired_ratio(ours, reference):
    """The median of run-by-run ratios ours/reference.

    Runs alternate, so each pair ran under about the same load: on a shared machine this
    is steadier than the ratio of the medians.
    """
    if ours.error is not None or reference.error is not None:
        return None
    pairs = [mine / theirs for mine, theirs in zip(ours.times, reference.times) if theirs > 0]
    return statistics.median(pairs) if pairs else None


def children_cpu():
    """User + system seconds of every waited-for child process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_interleaved(commands, runs=None):
    """Times several competing commands, alternating them run by run.

    `commands` is a list of (name, prepare, action): `prepare(run_index)` runs untimed
    before each run (reset state), `action(run_index)` is timed. Alternating the tools spreads the noise of a
    shared machine fairly over all of them. A tool that fails is not retried; its error
    is kept and the others go on.
    """
    runs = runs or RUNS
    results = {name: Measure(name) for name, _, _ in commands}
    for index in range(runs):
        for name, prepare, action in commands:
            result = results[name]
            if result.error is not None:
                continue
            try:
                if prepare is not None:
                    prepare(index)
                cpu_start = children_cpu()
                start = time.perf_counter()
                action(index)
                result.times.append(time.perf_counter() - start)
                result.cpu_times.append(children_cpu() - cpu_start)
                log(f"  {name}: run {index + 1}/{runs}: {seconds(result.times[-1])}")
            except CommandFailed as error:
                result.error = str(error)
                log(f"  {name}: FAILED: {error}")
    return results


def seconds(value):
    """A duration for a table: milliseconds below a second, else seconds."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def ratio(ours, reference):
    """ours / reference, or None when either is missing."""
    if ours is None or reference is None or reference == 0:
        return None
    return ours / reference


def record(benchmark, metric, reference_name, reference, ours, value, target, met, unit="s"):
    """Appends one row to the summary that run.sh prints at the end.

    `value` is the ratio (or the absolute figure when there is no reference), `target` a
    readable target such as `<= 1.0`, `met` True, False, or None when not measurable.
    """
    row = {
        "benchmark": benchmark,
        "metric": metric,
        "reference_name": reference_name,
        "reference": reference,
        "ours": ours,
        "value": value,
        "target": target,
        "met": met,
        "unit": unit,
    }
    path = os.environ.get("BENCH_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as summary:
            summary.write(json.dumps(row) + "\n")


def status(met):
    """The summary's verdict word."""
    if met is None:
        return "NOT MEASURED"
    return "ok" if met else "MISSED"


def reset_dir(path):
    """Removes a directory tree if present and creates it empty."""
    if os.path.lexists(path):
        shutil.rmtree(path)
    os.makedirs(path)


def copy_tree(source, destination):
    """Replaces `destination` by a copy of `source` (cp -a keeps links, modes, times)."""
    if os.path.lexists(destination):
        shutil.rmtree(destination)
    run(["cp", "-a", source, destination])


def table(headers, rows):
    """Formats rows of strings as a left-aligned text table."""
    widths = [len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = ["  ".join(header.ljust(widths[i]) for i, header in enumerate(headers))]
    lines.append("  ".join("-" * width for width in widths))
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
    return "\n".join(line.rstrip() for line in lines)


def tool_version(argv):
    """The first line a tool prints about its version (for the record), or `unknown`."""
    try:
        completed = subprocess.run(argv, capture_output=True, timeout=30)
        text = (completed.stdout or completed.stderr).decode("utf-8", "replace").strip()
        return text.splitlines()[0] if text else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
