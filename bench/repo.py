#!/usr/bin/python3
"""Repository benchmark: `debstage repo` against reprepro and aptly on 20,000 packages.

`repo.py BINARY` generates (or reuses) NAMES x VERSIONS small packages (gen_debs.py),
then times four operations with each tool, alternating the tools run by run:

1. add all: every package into the suite `test` of a new repository, indexes published;
2. promote: one package from `test` to `staging` (another package each run), `staging`
   published;
3. add one: one more package into the full `test` suite, `test` published;
4. publish: every suite's indexes written again.

Each tool signs its Release files: reprepro and aptly with gpg and an Ed25519 key made in
a temporary GNUPGHOME, debstage with the Ed25519 key `repo init` generates. Every tool
serves two suites (test, staging) for amd64. What each one writes is printed at the end
(aptly cannot write Packages.xz; reprepro 5.3 cannot write by-hash). After the runs the
published indexes are checked: `test` lists every package, `staging` the promoted ones,
and InRelease verifies with gpgv against the tool's public key.

Environment: BENCH_REPO_NAMES (500), BENCH_REPO_VERSIONS (40), BENCH_RUNS (3, at most
10 here: one extra package per "add one" run).
"""

import gzip
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import log  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
STAGES = ["test", "staging"]
EXTRA = 10
RATIO_TARGET = 1.0
# Wall-time ceilings of the operations a CI step runs once per release (issue 25: an add
# of one package and its publication in 20,000 under 250 ms).
WALL_TARGETS = {"promote": 0.5, "add one": 0.25}
OPERATIONS = ["add all", "promote", "add one", "publish"]


def promoted_package(run_index):
    """The package promoted in run `run_index`: (debstage's app, upstream version,
    package name). The packages are plain (gen_debs.py): debstage's app is the package."""
    package = f"app{100 + run_index:03d}-1.1"
    return package, "1.1", package


class Tool:
    """One repository tool: how it does each operation, and where it publishes."""

    name = ""
    # Packages the tool lists in every suite of its own accord, left out of the counts.
    own_packages = frozenset()

    def __init__(self, work, debs, env):
        self.work = work
        self.debs = debs
        self.env = env
        self.pool = os.path.join(debs, "pool")
        self.files = sorted(os.listdir(self.pool))
        self.extras = sorted(os.listdir(os.path.join(debs, "extra")))

    def extra(self, run_index):
        return os.path.join(self.debs, "extra", self.extras[run_index])

    def run(self, argv, cwd=None):
        return benchlib.run(argv, env=self.env, cwd=cwd)


class Debstage(Tool):
    name = "debstage"
    description = "debstage: state in SQLite, rPGP signing (Ed25519 key from repo init)"
    # Every suite lists the repository's keyring package (`<origin>-archive-keyring`).
    own_packages = frozenset({"bench-archive-keyring"})

    def __init__(self, work, debs, env, binary):
        super().__init__(work, debs, env)
        self.binary = binary
        self.root = os.path.join(work, "debstage")

    def command(self, *arguments):
        return [self.binary, "--quiet", "repo", "--repo", self.root, *arguments]

    def prepare_add_all(self, _run):
        benchlib.reset_dir(self.root)
        os.rmdir(self.root)
        self.run(self.command("init", "--stages", ",".join(STAGES), "--arch", "amd64",
                              "--origin", "bench", "--label", "bench"))

    def add_all(self, _run):
        self.run(self.command("add", "test", *self.files), cwd=self.pool)

    def promote(self, run_index):
        app, version, _ = promoted_package(run_index)
        self.run(self.command("promote", app, version, "--to", "staging"))

    def add_one(self, run_index):
        self.run(self.command("add", "test", self.extra(run_index)))

    def publish(self, _run):
        self.run(self.command("publish"))

    def dists(self):
        return os.path.join(self.root, "dists")

    def keyring(self):
        for name in sorted(os.listdir(self.root)):
            if name.endswith(".gpg"):
                return os.path.join(self.root, name)
        return None


class Reprepro(Tool):
    name = "reprepro"
    description = ("reprepro: conf/distributions with DebIndices Packages .gz .xz,"
                   " SignWith (gpg via gpgme); includedeb / copy / export")

    def __init__(self, work, debs, env, fingerprint, keyring):
        super().__init__(work, debs, env)
        self.root = os.path.join(work, "reprepro")
        self.fingerprint = fingerprint
        self.public_keyring = keyring

    def prepare_add_all(self, _run):
        # A new repository each run: no db, pool or dists left from the run before.
        benchlib.reset_dir(self.root)
        os.makedirs(os.path.join(self.root, "conf"))
        with open(os.path.join(self.root, "conf", "distributions"), "w", encoding="utf-8") as conf:
            for stage in STAGES:
                conf.write(
                    f"Codename: {stage}\nSuite: {stage}\nOrigin: bench\nLabel: bench\n"
                    "Architectures: amd64\nComponents: main\n"
                    "DebIndices: Packages Release . .gz .xz\n"
                    f"SignWith: {self.fingerprint}\n\n"
                )

    def add_all(self, _run):
        self.run(["reprepro", "-b", self.root, "includedeb", "test", *self.files], cwd=self.pool)

    def promote(self, run_index):
        self.run(["reprepro", "-b", self.root, "copy", "staging", "test", promoted_package(run_index)[2]])

    def add_one(self, run_index):
        self.run(["reprepro", "-b", self.root, "includedeb", "test", self.extra(run_index)])

    def publish(self, _run):
        self.run(["reprepro", "-b", self.root, "export"])

    def dists(self):
        return os.path.join(self.root, "dists")

    def keyring(self):
        return self.public_keyring


class Aptly(Tool):
    name = "aptly"
    description = ("aptly: one local repo per suite, gpg signing, -skip-bz2 -skip-contents"
                   " -acquire-by-hash; repo add + publish repo / repo copy + publish update")

    def __init__(self, work, debs, env, fingerprint, keyring):
        super().__init__(work, debs, env)
        self.root = os.path.join(work, "aptly")
        self.config = os.path.join(self.root, "aptly.conf")
        self.fingerprint = fingerprint
        self.public_keyring = keyring
        self.signing = [f"-gpg-key={fingerprint}", "-batch", "-skip-bz2", "-skip-contents"]

    def aptly(self, *arguments):
        self.run(["aptly", f"-config={self.config}", *arguments])

    def prepare_add_all(self, _run):
        benchlib.reset_dir(self.root)
        with open(self.config, "w", encoding="utf-8") as config:
            config.write(
                f'{{"rootDir": "{self.root}/root", "architectures": ["amd64"],'
                ' "gpgProvider": "gpg2", "gpgDisableVerify": true, "downloadConcurrency": 2}\n'
            )
        for stage in STAGES:
            self.aptly("repo", "create", f"-distribution={stage}", "-component=main", stage)
        # An empty staging is published once, untimed, so that promote can update it.
        self.aptly("publish", "repo", *self.publish_options(), "staging")

    def publish_options(self):
        return ["-architectures=amd64", "-origin=bench", "-label=bench", "-acquire-by-hash",
                *self.signing]

    def add_all(self, _run):
        self.aptly("repo", "add", "test", self.pool)
        self.aptly("publish", "repo", *self.publish_options(), "test")

    def promote(self, run_index):
        _, version, package = promoted_package(run_index)
        self.aptly("repo", "copy", "test", "staging", f"{package} (= {version}-1)")
        self.aptly("publish", "update", *self.signing, "staging")

    def add_one(self, run_index):
        self.aptly("repo", "add", "test", self.extra(run_index))
        self.aptly("publish", "update", *self.signing, "test")

    def publish(self, _run):
        for stage in STAGES:
            self.aptly("publish", "update", *self.signing, stage)

    def dists(self):
        return os.path.join(self.root, "root", "public", "dists")

    def keyring(self):
        return self.public_keyring


def make_gpg_key(work):
    """An Ed25519 signing key without passphrase in a fresh GNUPGHOME: (env, fpr, keyring)."""
    home = os.path.join(work, "gnupg")
    benchlib.reset_dir(home)
    os.chmod(home, 0o700)
    env = dict(os.environ, GNUPGHOME=home)
    benchlib.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
                  "--quick-gen-key", "debstage benchmark <bench@example.invalid>",
                  "ed25519", "sign", "never"], env=env)
    listing = benchlib.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env=env)
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    keyring = os.path.join(work, "bench-public.gpg")
    benchlib.run(["gpg", "--batch", "--yes", "--output", keyring, "--export", fingerprint], env=env)
    # Start gpg-agent now, untimed: the first signature would otherwise pay for it.
    warm_up = os.path.join(work, "warm-up.txt")
    with open(warm_up, "w", encoding="utf-8") as text:
        text.write("warm up\n")
    benchlib.run(["gpg", "--batch", "--yes", "--local-user", fingerprint, "--clearsign", warm_up], env=env)
    return env, fingerprint, keyring


def packages_index(dists, suite):
    """The package names that `dists/<suite>/main/binary-amd64/Packages(.gz)` lists."""
    directory = os.path.join(dists, suite, "main", "binary-amd64")
    plain, compressed = os.path.join(directory, "Packages"), os.path.join(directory, "Packages.gz")
    if os.path.exists(plain):
        with open(plain, encoding="utf-8") as source:
            text = source.read()
    elif os.path.exists(compressed):
        with gzip.open(compressed, "rt", encoding="utf-8") as source:
            text = source.read()
    else:
        raise FileNotFoundError(f"no Packages or Packages.gz in {directory}")
    return [line[len("Package: "):] for line in text.splitlines() if line.startswith("Package: ")]


def index_formats(dists):
    """What a tool wrote for `test`: index file names, and whether by-hash is there."""
    directory = os.path.join(dists, "test", "main", "binary-amd64")
    names = sorted(name for name in os.listdir(directory) if name != "by-hash")
    signed = sorted(name for name in os.listdir(os.path.join(dists, "test"))
                    if name in ("InRelease", "Release.gpg"))
    by_hash = "by-hash" if os.path.isdir(os.path.join(directory, "by-hash")) else "no by-hash"
    return f"{' '.join(names)}; {by_hash}; {' '.join(signed)}"


def check(tool, runs, expected_test):
    """Problems with a tool's published result (an empty list when it is right)."""
    problems = []
    dists = tool.dists()
    try:
        test = [name for name in packages_index(dists, "test") if name not in tool.own_packages]
        if len(test) != expected_test:
            problems.append(f"test lists {len(test)} packages, expected {expected_test}")
        staging = set(packages_index(dists, "staging"))
        for run_index in range(runs):
            package = promoted_package(run_index)[2]
            if package not in staging:
                problems.append(f"staging does not list {package}")
        keyring = tool.keyring()
        for stage in STAGES:
            in_release = os.path.join(dists, stage, "InRelease")
            if keyring is None:
                problems.append("no public keyring to verify InRelease with")
            elif not os.path.exists(in_release):
                problems.append(f"no {in_release}")
            else:
                benchlib.run(["gpgv", "--keyring", keyring, in_release])
    except (OSError, benchlib.CommandFailed, UnicodeDecodeError) as error:
        problems.append(str(error))
    return problems


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: repo.py BINARY")
    binary = os.path.abspath(sys.argv[1])
    names = int(os.environ.get("BENCH_REPO_NAMES", "500"))
    versions = int(os.environ.get("BENCH_REPO_VERSIONS", "40"))
    runs = min(benchlib.RUNS, EXTRA)
    if names < 100 + runs:
        sys.exit(f"repo.py: BENCH_REPO_NAMES={names}: needs at least {100 + runs} (promote picks app100 on)")

    log(f"== repo: generating (or reusing) {names} x {versions} packages")
    debs = benchlib.run(
        ["/usr/bin/python3", os.path.join(HERE, "gen_debs.py"), benchlib.BENCH_DIR,
         "--names", str(names), "--versions", str(versions), "--extra", str(EXTRA)]
    ).strip().splitlines()[-1]
    work = os.path.join(benchlib.BENCH_DIR, "repo-work")
    benchlib.reset_dir(work)
    env, fingerprint, keyring = make_gpg_key(work)

    tools = [
        Reprepro(work, debs, env, fingerprint, keyring),
        Aptly(work, debs, env, fingerprint, keyring),
        Debstage(work, debs, dict(os.environ), binary),
    ]
    total = len(tools[0].files)
    print(f"Repository benchmark: {total} packages ({names} names x {versions} versions,"
          f" {sum(os.path.getsize(os.path.join(tools[0].pool, f)) for f in tools[0].files) / 2**20:.0f} MiB),"
          f" suites {', '.join(STAGES)}, amd64, {runs} runs per operation, median")
    print(f"  reprepro: {benchlib.tool_version(['reprepro', '--version'])}")
    print(f"  aptly: {benchlib.tool_version(['aptly', 'version'])}")

    steps = {
        "add all": lambda tool: (tool.prepare_add_all, tool.add_all),
        "promote": lambda tool: (None, tool.promote),
        "add one": lambda tool: (None, tool.add_one),
        "publish": lambda tool: (None, tool.publish),
    }
    results = {}
    broken = set()
    for operation in OPERATIONS:
        log(f"== repo: {operation}")
        commands = []
        for tool in tools:
            if tool.name in broken:
                continue
            prepare, action = steps[operation](tool)
            commands.append((tool.name, prepare, action))
        results[operation] = benchlib.measure_interleaved(commands, runs)
        for name, measure in results[operation].items():
            if measure.error is not None:
                # Later operations need this one's state: the tool sits them out.
                broken.add(name)

    rows = []
    failures = 0
    for operation in OPERATIONS:
        measures = results[operation]
        references = [measures[name] for name in ("reprepro", "aptly") if name in measures]
        valid = [m for m in references if m.median is not None]
        best = min(valid, key=lambda m: m.median) if valid else None
        ours = measures.get("debstage")
        ours_median = ours.median if ours is not None else None
        value = benchlib.ratio(ours_median, best.median if best else None)
        met = None if value is None else value <= RATIO_TARGET
        target = f"<= {RATIO_TARGET}x faster of reprepro/aptly"
        ceiling = WALL_TARGETS.get(operation)
        if ceiling is not None:
            target += f", < {ceiling} s"
            if met is not None:
                met = met and ours_median < ceiling
        rows.append((operation, measures, best, value, target, met))
        benchlib.record(f"repo {operation}", "wall time", best.name if best else "-",
                        best.median if best else None, ours_median, value, target, met)
        failures += sum(1 for m in references if m.error is not None)

    print()
    headers = ["operation", "reprepro", "aptly", "debstage", "ratio", "target", "status"]
    table_rows = []
    for operation, measures, best, value, target, met in rows:
        cells = [operation]
        for name in ("reprepro", "aptly", "debstage"):
            measure = measures.get(name)
            if measure is None:
                cells.append("not run (earlier step failed)")
            elif measure.error is not None:
                cells.append("FAILED" if name != "debstage" else "not available")
            else:
                cells.append(benchlib.seconds(measure.median))
        cells.append("-" if value is None else f"{value:.2f}x vs {best.name}")
        cells.append(target)
        cells.append(benchlib.status(met))
        table_rows.append(cells)
    print(benchlib.table(headers, table_rows))
    for operation, measures, _, _, _, _ in rows:
        for name, measure in measures.items():
            if measure.error is not None:
                print(f"  {operation}: {name}: not available ({measure.error})")

    print("\n  What each tool did (same packages, same suites, each signs with an Ed25519 key):")
    expected_test = total + runs
    for tool in tools:
        print(f"  - {tool.description}")
        if tool.name in broken:
            continue
        try:
            print(f"    wrote for test: {index_formats(tool.dists())}")
        except OSError as error:
            print(f"    wrote for test: unreadable ({error})")
        problems = check(tool, runs, expected_test)
        if problems:
            failures += 1
            print(f"    CHECK FAILED: {'; '.join(problems)}")
        else:
            print(f"    check: test lists {expected_test} packages, staging the {runs} promoted,"
                  " InRelease of both suites verifies with gpgv")
    benchlib.run(["gpgconf", "--kill", "gpg-agent"], env=env)
    debstage_error = any(
        measures.get("debstage") is not None and measures["debstage"].error is not None
        and "not implemented" not in measures["debstage"].error
        for _, measures, _, _, _, _ in rows
    )
    sys.exit(1 if failures or debstage_error else 0)


if __name__ == "__main__":
    main()
