#!/bin/sh
# The benchmarks of `make bench`: debstage against dpkg-deb, reprepro and aptly,
# measured in the same run on the same generated input, with ratios and a summary.
#
#   bench/run.sh BINARY [BENCHMARK...]     BENCHMARK: build, repo, python, layers, target, s3, limits (default: all)
#
# Generated data is kept under target/bench/ (BENCH_DIR) and reused when the
# generators' parameters are the same. Exit status: 0 when every benchmark ran, even if a
# target was missed (the summary says MISSED); 1 when something failed to run.
# Knobs: BENCH_RUNS (3), BENCH_TREE_MB (200), BENCH_TREE_FILES (8000), BENCH_ZSTD_LEVEL
# (3), BENCH_COMPRESSORS ("xz zstd"), BENCH_REPO_NAMES (500), BENCH_REPO_VERSIONS (40).
set -eu

if [ $# -lt 1 ]; then
    echo "usage: bench/run.sh BINARY [build|repo|python|layers|target ...]" >&2
    exit 2
fi
binary=$1
shift
if [ ! -x "$binary" ]; then
    echo "bench/run.sh: $binary: no such executable (run 'cargo build --release' first)" >&2
    exit 1
fi
benchmarks=${*:-build repo python layers target s3 limits}
here=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3

missing=""
for tool in dpkg-deb reprepro aptly gpg gpgv xz zstd; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    echo "bench/run.sh: missing tools:$missing (run 'make bench-deps')" >&2
    exit 1
fi

BENCH_DIR=${BENCH_DIR:-$(pwd)/target/bench}
mkdir -p "$BENCH_DIR"
BENCH_SUMMARY="$BENCH_DIR/summary.jsonl"
: > "$BENCH_SUMMARY"
# No __pycache__ in the source tree from importing benchlib.
PYTHONDONTWRITEBYTECODE=1
export BENCH_DIR BENCH_SUMMARY PYTHONDONTWRITEBYTECODE

echo "debstage benchmarks: $("$binary" --version 2>/dev/null || echo "$binary"), $(nproc) CPUs,"\
    "load $(cut -d' ' -f1-3 /proc/loadavg), runs per figure: ${BENCH_RUNS:-3}"

statuses=""
failed=0
for benchmark in $benchmarks; do
    echo
    case $benchmark in
        build) set -- "$python" "$here/build.py" "$binary" ;;
        target) set -- "$python" "$here/target.py" "$binary" ;;
        repo) set -- "$python" "$here/repo.py" "$binary" ;;
        s3) set -- "$python" "$here/s3.py" "$binary" ;;
        limits) set -- "$python" "$here/limits.py" "$binary" ;;
        python)
            if [ ! -e "$here/python.sh" ]; then
                echo "python: bench/python.sh is not there yet: skipped"
                statuses="$statuses python=skipped"
                continue
            fi
            set -- sh "$here/python.sh" "$binary"
            ;;
        layers) set -- sh "$here/layers.sh" "$binary" ;;
        *)
            echo "bench/run.sh: unknown benchmark '$benchmark' (build, repo, python, layers, target, s3, limits)" >&2
            exit 2
            ;;
    esac
    code=0
    "$@" || code=$?
    statuses="$statuses $benchmark=$code"
    [ "$code" = 0 ] || failed=1
done

# shellcheck disable=SC2086 # one word per benchmark
"$python" "$here/summary.py" "$BENCH_SUMMARY" $statuses
exit "$failed"
