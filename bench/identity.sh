#!/bin/bash
# Byte identity of what two debstage binaries write, for refactors that must not change
# output: the bundled examples' packages and build manifests, and a repository carried
# through its stages (pool, indexes, Release, the dashboard).
#
#   bench/identity.sh OLD_BINARY NEW_BINARY
#
# The scenario runs twice with OLD, so that a file which differs between two runs of the
# same binary (a signature, a publication date, the dashboard's clock) is told apart from
# one the new binary changed: only files that OLD writes the same way twice are compared
# with NEW. Exits 1 when one of those differs, naming it.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 OLD_BINARY NEW_BINARY" >&2
    exit 2
fi
OLD=$(realpath "$1")
NEW=$(realpath "$2")
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/debstage-identity.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export SOURCE_DATE_EPOCH=1700000000

# One run of the scenario with binary $1 into directory $2; prints nothing on success.
scenario() {
    local bin=$1 dir=$2
    mkdir -p "$dir"
    cp -a "$HERE/examples/hello" "$dir/hello"
    (
        export DEBSTAGE_REPO="$dir/repo"
        "$bin" build --manifest "$dir/hello/debstage.toml" --out "$dir/out" --version 1.0
        "$bin" build --manifest "$dir/hello/debstage.toml" --out "$dir/out" --version 1.1
        "$bin" repo init --stages test,staging,production --origin identity
        "$bin" repo add --manifest "$dir/out/hello_1.0-1.build.json"
        "$bin" repo promote hello 1.0 staging
        "$bin" repo promote hello 1.0 production
        "$bin" repo add --manifest "$dir/out/hello_1.1-1.build.json"
        "$bin" repo promote hello 1.1 staging
        "$bin" repo rollback hello staging
    ) >"$dir.log" 2>&1 || { echo "$bin failed; its output:" >&2; cat "$dir.log" >&2; exit 1; }
}

# Relative path and sha256 of every regular file under $1, the repository's private
# state and secret key left out (they hold the run's history and a fresh key).
digests() {
    (cd "$1" && find . -type f ! -path './repo/.debstage/*' ! -path './repo/state*' \
        ! -name '*.db' ! -name '*.log' ! -path './hello/*' -print0 |
        sort -z | xargs -0 sha256sum)
}

scenario "$OLD" "$WORK/old1"
scenario "$OLD" "$WORK/old2"
scenario "$NEW" "$WORK/new"

digests "$WORK/old1" >"$WORK/old1.sums"
digests "$WORK/old2" >"$WORK/old2.sums"
digests "$WORK/new" >"$WORK/new.sums"

# Files the old binary writes identically twice: the ones the comparison holds to.
stable=$(join -j 2 <(sort -k2 "$WORK/old1.sums") <(sort -k2 "$WORK/old2.sums") |
    awk '$2 == $3 { print $1, $2 }')
varying=$(join -j 2 <(sort -k2 "$WORK/old1.sums") <(sort -k2 "$WORK/old2.sums") |
    awk '$2 != $3 { print $1 }')

status=0
compared=0
while read -r path sum; do
    [ -n "$path" ] || continue
    compared=$((compared + 1))
    new=$(awk -v p="$path" '$2 == p { print $1 }' "$WORK/new.sums")
    if [ -z "$new" ]; then
        echo "MISSING in new output: $path"
        status=1
    elif [ "$new" != "$sum" ]; then
        echo "DIFFERS: $path"
        status=1
    fi
done <<<"$stable"
extra=$(comm -13 <(awk '{ print $2 }' "$WORK/old1.sums" | sort) \
    <(awk '{ print $2 }' "$WORK/new.sums" | sort))
if [ -n "$extra" ]; then
    echo "new output has files the old does not:"
    echo "$extra" | sed 's/^/  /'
    status=1
fi

echo "compared $compared files written identically by two runs of the old binary"
if [ -n "$varying" ]; then
    echo "left out (they differ between two runs of the same binary):"
    echo "$varying" | sed 's/^/  /'
fi
if [ "$status" = 0 ]; then
    echo "identical"
fi
exit "$status"
