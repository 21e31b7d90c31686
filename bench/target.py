#!/usr/bin/python3
"""`debstage build --target bookworm` of examples/pyapp with a warm build root, against a
host build of the same input, in the same run (target: <= 1.3x).

`target.py BINARY`. Both builds install the same wheels from a local directory (no
index): the example is copied with its wheels inside it, because a target build sees only
the application directory (read-only at /debstage/app) and its root. The build roots are
cached in BENCH_DIR/target-cache (XDG_CACHE_HOME); the first build there makes the root
cold, and its time is reported on its own (it is not part of the ratio).
"""

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHEELS = ["Pillow==11.0.0", "flit_core==3.9.0"]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: target.py BINARY")
    binary = os.path.abspath(sys.argv[1])
    work = os.path.join(benchlib.BENCH_DIR, "target")
    app = os.path.join(work, "pyapp")
    benchlib.reset_dir(work)
    benchlib.copy_tree(os.path.join(ROOT, "examples", "pyapp"), app)
    wheels = os.path.join(app, "wheels")
    shared_wheels = os.path.join(ROOT, "target", "pyapp-wheels")
    if not os.path.isdir(shared_wheels) or not os.listdir(shared_wheels):
        benchlib.log(f"downloading the example's wheels into {shared_wheels}")
        benchlib.run(["/usr/bin/python3", "-m", "pip", "download", "-q",
                      "--disable-pip-version-check", "--only-binary", ":all:",
                      "-d", shared_wheels] + WHEELS)
    shutil.copytree(shared_wheels, wheels)
    cache = os.path.join(benchlib.BENCH_DIR, "target-cache")
    manifest = os.path.join(app, "debstage.toml")

    def build(target, find_links):
        out = os.path.join(work, "out-" + (target or "host"))
        shutil.rmtree(out, ignore_errors=True)
        env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000", XDG_CACHE_HOME=cache,
                   PIP_NO_INDEX="1", PIP_FIND_LINKS=find_links)
        argv = [binary, "--quiet", "build", "--manifest", manifest, "--out", out]
        if target:
            argv += ["--target", target]
        return lambda _index: benchlib.run(argv, env=env)

    host = build(None, wheels)
    # Inside the root the application directory is /debstage/app.
    target = build("bookworm", "/debstage/app/wheels")
    root = os.path.join(cache, "debstage", "roots")
    cold = not any(name.startswith("bookworm-") and not name.endswith(".lock")
                   for name in (os.listdir(root) if os.path.isdir(root) else []))
    benchlib.log("first --target bookworm build (makes the build root when it is cold)")
    start = time.perf_counter()
    try:
        target(0)
        first = time.perf_counter() - start
    except benchlib.CommandFailed as error:
        print(f"target: the first --target build failed: {error}")
        return 1
    results = benchlib.measure_interleaved([
        ("host build", None, host),
        ("--target bookworm (warm root)", None, target),
    ])
    host_result = results["host build"]
    target_result = results["--target bookworm (warm root)"]
    value = benchlib.paired_ratio(target_result, host_result)
    met = None if value is None else value <= 1.3
    print("build --target bookworm of examples/pyapp (Pillow 11.0.0, local wheels)")
    print(f"  first --target build ({'cold root' if cold else 'root already warm'}):"
          f" {benchlib.seconds(first)}")
    print(f"  host build:                    {host_result.describe()}")
    print(f"  --target bookworm, warm root:  {target_result.describe()}")
    shown = "-" if value is None else f"{value:.2f}x"
    print(f"  ratio target / host: {shown} (target <= 1.3x): {benchlib.status(met)}")
    benchlib.record("target", "build --target bookworm, warm root", "host build",
                    host_result.median, target_result.median, value, "<= 1.3", met)
    return 0 if value is not None else 1


if __name__ == "__main__":
    sys.exit(main())
