#!/usr/bin/python3
"""Publishing to an S3-compatible store: debstage against aptly, on the same single-node
Garage, with the 20,000-package repository of repo.py (gen_debs.py).

For each tool, untimed: a repository with every package in `test`. Timed:
1. cold publish: the first copy of `test` (and the empty `staging`) to the bucket;
2. promote + publish: one package from `test` to `staging` and `staging` published to
   the bucket (BENCH_RUNS runs, another package each run, median).
debstage publishes with `repo publish --target` (cold) and an automatic target (promote);
aptly with `publish repo ... s3:garage:` and `repo copy` + `publish update staging
s3:garage:`. Objects uploaded by debstage come from its summary line.

Garage: $DEBSTAGE_GARAGE or ~/.cache/debstage/tools/garage-2.5.0/bin/garage (`make garage`).
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import log  # noqa: E402
from repo import make_gpg_key, promoted_package  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RATIO_TARGET = 0.5
# Cold publication of the whole repository: debstage's wall time over aptly's (issue 25).
COLD_TARGET = 0.3


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Garage:
    """A single-node Garage on loopback with bucket `bench` and one key."""

    def __init__(self, binary, work):
        self.binary = binary
        self.directory = tempfile.mkdtemp(prefix="garage-", dir=work)
        rpc, self.api, web, admin = (free_port() for _ in range(4))
        self.config = os.path.join(self.directory, "garage.toml")
        with open(self.config, "w", encoding="utf-8") as config:
            config.write(
                f'metadata_dir = "{self.directory}/meta"\ndata_dir = "{self.directory}/data"\n'
                f'db_engine = "sqlite"\nreplication_factor = 1\n'
                f'rpc_bind_addr = "127.0.0.1:{rpc}"\nrpc_public_addr = "127.0.0.1:{rpc}"\n'
                f'rpc_secret = "{os.urandom(32).hex()}"\n'
                f'[s3_api]\ns3_region = "garage"\napi_bind_addr = "127.0.0.1:{self.api}"\n'
                f'root_domain = ".s3.garage"\n'
                f'[s3_web]\nbind_addr = "127.0.0.1:{web}"\nroot_domain = ".web.garage"\n'
                f'[admin]\napi_bind_addr = "127.0.0.1:{admin}"\n'
            )
        self.process = subprocess.Popen(
            [binary, "-c", self.config, "server"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=dict(os.environ, RUST_LOG="warn"))
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.api), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("garage did not start")
                time.sleep(0.2)
        node = self.cli("node", "id", "-q").strip().split("@")[0]
        self.cli("layout", "assign", "-z", "dc1", "-c", "10G", node)
        self.cli("layout", "apply", "--version", "1")
        self.cli("bucket", "create", "bench")
        key = self.cli("key", "create", "bench")
        self.access_key = re.search(r"Key ID:\s*(\S+)", key).group(1)
        self.secret_key = re.search(r"Secret key:\s*(\S+)", key).group(1)
        self.cli("bucket", "allow", "--read", "--write", "--owner", "bench", "--key", "bench")
        self.endpoint = f"http://127.0.0.1:{self.api}"

    def cli(self, *arguments):
        deadline = time.monotonic() + 30
        while True:
            result = subprocess.run([self.binary, "-c", self.config, *arguments],
                                    capture_output=True, text=True, check=False)
            if result.returncode == 0:
                return result.stdout
            if time.monotonic() > deadline:
                raise RuntimeError(f"garage {arguments}: {result.stderr}")
            time.sleep(0.3)

    def stop(self):
        self.process.kill()
        self.process.wait()


def timed(argv, env, cwd=None):
    started = time.monotonic()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}...: exit {result.returncode}\n{result.stderr[-2000:]}")
    return elapsed, result


def uploaded(stderr):
    match = re.search(r"publish target \S+: uploaded (\d+) object", stderr)
    return int(match.group(1)) if match else None


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: s3.py BINARY")
    binary = os.path.abspath(sys.argv[1])
    garage_binary = os.environ.get("DEBSTAGE_GARAGE") or os.path.expanduser(
        "~/.cache/debstage/tools/garage-2.5.0/bin/garage")
    if not os.path.isfile(garage_binary):
        sys.exit(f"s3.py: {garage_binary} is missing (run `make garage`)")
    names = int(os.environ.get("BENCH_REPO_NAMES", "500"))
    versions = int(os.environ.get("BENCH_REPO_VERSIONS", "40"))
    runs = min(benchlib.RUNS, 10)
    log(f"== s3: generating (or reusing) {names} x {versions} packages")
    debs = benchlib.run(
        ["/usr/bin/python3", os.path.join(HERE, "gen_debs.py"), benchlib.BENCH_DIR,
         "--names", str(names), "--versions", str(versions), "--extra", "10"]
    ).strip().splitlines()[-1]
    pool = os.path.join(debs, "pool")
    files = sorted(os.listdir(pool))
    work = os.path.join(benchlib.BENCH_DIR, "s3-work")
    benchlib.reset_dir(work)
    env, fingerprint, _ = make_gpg_key(work)
    garage = Garage(garage_binary, work)
    try:
        credentials = dict(os.environ, AWS_ACCESS_KEY_ID=garage.access_key,
                           AWS_SECRET_ACCESS_KEY=garage.secret_key)
        results = {}

        # debstage
        root = os.path.join(work, "debstage")
        repo = [binary, "repo", "--repo", root]
        benchlib.run([*repo, "init", "--stages", "test,staging", "--arch", "amd64",
                      "--origin", "bench", "--label", "bench"])
        with open(os.path.join(root, "debstage-repo.toml"), "a", encoding="utf-8") as config:
            config.write(f'\n[[publish.targets]]\nname = "garage"\nurl = "s3://bench/debstage"\n'
                         f'endpoint = "{garage.endpoint}"\nregion = "garage"\npath_style = true\n'
                         'conditional_writes = false\n')
        log("== s3: debstage: add all (untimed)")
        benchlib.run([*repo, "--quiet", "add", "test", *files], cwd=pool)
        log("== s3: debstage: cold publish")
        elapsed, result = timed([*repo, "--format", "json", "publish", "--target", "garage"],
                                credentials)
        cold = json.loads(result.stdout)
        results["debstage cold"] = (elapsed, cold["uploaded_total"])
        with open(os.path.join(root, "debstage-repo.toml"), "a", encoding="utf-8") as config:
            config.write("automatic = true\n")
        promote_times, promote_objects = [], []
        for run_index in range(runs):
            app, version, _ = promoted_package(run_index)
            elapsed, result = timed([*repo, "promote", app, version, "--to", "staging"],
                                    credentials)
            promote_times.append(elapsed)
            promote_objects.append(uploaded(result.stderr))
        results["debstage promote"] = (sorted(promote_times)[len(promote_times) // 2],
                                       promote_objects)

        # aptly
        aptly_root = os.path.join(work, "aptly")
        os.makedirs(aptly_root)
        aptly_config = os.path.join(aptly_root, "aptly.conf")
        with open(aptly_config, "w", encoding="utf-8") as config:
            json.dump({"rootDir": f"{aptly_root}/root", "architectures": ["amd64"],
                       "gpgProvider": "gpg2", "gpgDisableVerify": True,
                       "S3PublishEndpoints": {"garage": {
                           "region": "garage", "bucket": "bench", "endpoint": garage.endpoint,
                           "awsAccessKeyID": garage.access_key,
                           "awsSecretAccessKey": garage.secret_key, "prefix": "aptly",
                           "forceSigV2": False, "debug": False}}}, config)
        aptly = ["aptly", f"-config={aptly_config}"]
        signing = [f"-gpg-key={fingerprint}", "-batch", "-skip-bz2", "-skip-contents"]
        options = ["-architectures=amd64", "-origin=bench", "-label=bench", "-acquire-by-hash",
                   *signing]
        for stage in ("test", "staging"):
            benchlib.run([*aptly, "repo", "create", f"-distribution={stage}",
                          "-component=main", stage], env=env)
        log("== s3: aptly: add all (untimed)")
        benchlib.run([*aptly, "repo", "add", "test", pool], env=env)
        log("== s3: aptly: cold publish")
        elapsed, _ = timed([*aptly, "publish", "repo", *options, "test", "s3:garage:"], env)
        elapsed_staging, _ = timed([*aptly, "publish", "repo", *options, "staging",
                                    "s3:garage:"], env)
        results["aptly cold"] = (elapsed + elapsed_staging, None)
        times = []
        for run_index in range(runs):
            _, version, package = promoted_package(run_index)
            started = time.monotonic()
            benchlib.run([*aptly, "repo", "copy", "test", "staging",
                          f"{package} (= {version}-1)"], env=env)
            benchlib.run([*aptly, "publish", "update", *signing, "staging", "s3:garage:"],
                         env=env)
            times.append(time.monotonic() - started)
        results["aptly promote"] = (sorted(times)[len(times) // 2], None)
    finally:
        garage.stop()
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False)

    ours, theirs = results["debstage promote"][0], results["aptly promote"][0]
    ratio = ours / theirs
    met = ratio <= RATIO_TARGET
    print(f"\nS3 publishing on Garage 2.5.0: {len(files)} packages, suites test and staging")
    print(f"  cold publish:      debstage {results['debstage cold'][0]:.2f} s "
          f"({results['debstage cold'][1]} objects), aptly {results['aptly cold'][0]:.2f} s")
    print(f"  promote + publish: debstage {ours:.2f} s (objects per run: "
          f"{results['debstage promote'][1]}), aptly {theirs:.2f} s "
          f"(median of {runs}): {ratio:.2f}x, target <= {RATIO_TARGET}x: "
          f"{'met' if met else 'MISSED'}")
    benchlib.record("s3 promote + publish", "wall time", "aptly", theirs, ours, ratio,
                    f"<= {RATIO_TARGET}x aptly", met)
    cold_ratio = results["debstage cold"][0] / results["aptly cold"][0]
    cold_met = cold_ratio <= COLD_TARGET
    print(f"  cold publish ratio: {cold_ratio:.2f}x, target <= {COLD_TARGET}x: "
          f"{'met' if cold_met else 'MISSED'}")
    benchlib.record("s3 cold publish", "wall time", "aptly", results["aptly cold"][0],
                    results["debstage cold"][0], cold_ratio, f"<= {COLD_TARGET}x aptly",
                    cold_met)


if __name__ == "__main__":
    main()
