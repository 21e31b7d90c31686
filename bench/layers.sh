#!/bin/sh
# bench/layers.sh BINARY
#
# Layered releases (issue 21) against today's single payload, in the same run, for two
# generated applications built as a first release and then as a code-only release (one
# source line changed), once with layers and once with `[layers] enabled = false`:
# - Python: real wheels from PyPI (numpy, pandas and what they pull in, about 150 MB
#   installed; downloaded once into target/bench/layer-wheels);
# - Node: real packages from the npm registry (express, lodash, moment, typescript, rxjs;
#   the lockfile and npm's cache kept in target/bench/node-app after the first run).
#
# Printed side by side, and recorded for bench/summary.py with their targets:
# - the bytes a production server downloads for the code-only upgrade (target <= 1% of
#   the single payload's). For Python, apt's archive cache after the upgrade in a Debian
#   root (below); without one, and for Node, the packages of the second build (the
#   production stage package, the release, the layer) that the first did not already
#   have with the same name and bytes (e2e::layers checks with real apt that a code-only
#   release fetches the release and the stage package only);
# - the build time of the code-only release (target <= 10% of the first build's);
# - Python only, the server's upgrade time: `apt-get install` of the new stage package in
#   a copy of debstage's bookworm build root (`$XDG_CACHE_HOME/debstage/roots`), from a
#   repository served by `debstage repo serve` on 127.0.0.1, after 1.0 was installed the
#   same way (target <= 0.5x of the single payload's). Needs root; without it, or
#   without that root (made by any `build --target bookworm`), it is not measured.
#
# Knobs: BENCH_LAYER_REQUIREMENTS (default "numpy==1.26.4 pandas==2.2.3"; a smaller set
# such as "tabulate==0.9.0" checks the script in seconds), BENCH_NODE_DEPENDENCIES
# (default "express@4.21.2 lodash@4.17.21 moment@2.30.1 typescript@5.7.2 rxjs@7.8.1"),
# BENCH_LAYER_KINDS ("python node"), BENCH_DIR (target/bench).
set -eu

binary=${1:?usage: bench/layers.sh BINARY}
case "$binary" in /*) ;; *) binary="$PWD/$binary" ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
requirements=${BENCH_LAYER_REQUIREMENTS:-"numpy==1.26.4 pandas==2.2.3"}
node_dependencies=${BENCH_NODE_DEPENDENCIES:-"express@4.21.2 lodash@4.17.21 moment@2.30.1 typescript@5.7.2 rxjs@7.8.1"}
kinds=${BENCH_LAYER_KINDS:-"python node"}
bench_dir=${BENCH_DIR:-$root/target/bench}
build_root=${XDG_CACHE_HOME:-$HOME/.cache}/debstage/roots/bookworm-amd64
work=$(mktemp -d "${TMPDIR:-/tmp}/debstage-bench-layers.XXXXXX")
server=""
serve_pid=""
# Stops what this script started (its repo serve, by PID) and unmounts the server's /proc
# before the work directory goes.
cleanup() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; fi
  if [ -n "$server" ] && mountpoint -q "$server/proc"; then umount "$server/proc"; fi
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { printf f, a / b }'; }
at_most() { awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b) ? "True" : "False" }'; }

# record METRIC REFERENCE_NAME REFERENCE OURS VALUE TARGET MET UNIT: one row of the summary
# (MET is True, False or None; REFERENCE, OURS and VALUE may be None).
record() {
  /usr/bin/python3 - "$@" <<'EOF'
import os
import sys
sys.path.insert(0, os.environ["BENCH_HERE"])
import benchlib

metric, reference_name, reference, ours, value, target, met, unit = sys.argv[1:]
number = lambda text: None if text == "None" else float(text)
benchlib.record("layers", metric, reference_name, number(reference), number(ours),
                number(value), target, {"True": True, "False": False}.get(met), unit)
EOF
}
BENCH_HERE=$here
export BENCH_HERE

# new_bytes FIRST SECOND APP: the bytes of the .deb files in SECOND that FIRST lacks, for
# a production server (the other stages' packages left out).
new_bytes() {
  total=0
  for deb in "$2"/*.deb; do
    name=$(basename "$deb")
    case "$name" in "$3"-test_* | "$3"-staging_*) continue ;; esac
    if [ -f "$1/$name" ] && cmp -s "$1/$name" "$deb"; then
      continue
    fi
    total=$((total + $(stat -c %s "$deb")))
  done
  echo "$total"
}

# build MANIFEST OUT [VARIABLE=VALUE...]: builds into OUT; prints the wall time.
build() {
  manifest=$1 out=$2
  shift 2
  start=$(now)
  env XDG_CACHE_HOME="$work/cache" SOURCE_DATE_EPOCH=1700000000 "$@" \
    "$binary" --quiet build --manifest "$manifest" --out "$out" >/dev/null
  elapsed "$start" "$(now)"
}

# in_server COMMAND...: runs COMMAND in the server root, with only the bench's sources.
in_server() {
  chroot "$server" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C \
    DEBIAN_FRONTEND=noninteractive "$@"
}
# server_apt ARGUMENTS...: apt-get in the server root, its output in the work directory
# (shown when it fails).
server_apt() {
  in_server apt-get -y -q -o Dir::Etc::SourceList=/dev/null \
    -o Dir::Etc::SourceParts=/etc/apt/bench.d "$@" > "$work/apt.log" 2>&1 || {
    cat "$work/apt.log" >&2
    return 1
  }
}

# release REPO APP OUT VERSION: adds the build in OUT and promotes it to production.
release() {
  "$binary" --quiet repo --repo "$1" add --manifest "$(ls "$3"/*.build.json)" >/dev/null
  for stage in staging production; do
    "$binary" --quiet repo --repo "$1" promote "$2" "$4" --to "$stage" >/dev/null
  done
}

# upgrade MODE APP FIRST SECOND: in a fresh copy of the build root, installs the
# production stage package of FIRST's build from a served repository, then times the
# upgrade to SECOND's; sets upgrade_seconds and upgrade_fetched (the bytes in apt's
# archive cache after the upgrade), both empty when it cannot run here. Runs in this
# shell (not in $(...)), so that cleanup sees the server and the repo serve it started.
upgrade() {
  upgrade_seconds="" upgrade_fetched=""
  if [ "$(id -u)" != 0 ] || [ ! -d "$build_root/var/lib/dpkg" ]; then
    return 0
  fi
  repo="$work/repo-$1"
  server="$work/server-$1"
  flock -s "$build_root.lock" cp -a --reflink=auto "$build_root" "$server"
  mount -t proc proc "$server/proc"
  "$binary" --quiet repo --repo "$repo" init --origin bench >/dev/null
  release "$repo" "$2" "$3" 1.0
  port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$binary" --quiet repo --repo "$repo" serve --addr "127.0.0.1:$port" >/dev/null 2>&1 &
  serve_pid=$!
  /usr/bin/python3 - "$port" <<'EOF'
import socket, sys, time
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
        break
    except OSError:
        time.sleep(0.05)
EOF
  mkdir -p "$server/etc/apt/bench.d" "$server/usr/share/keyrings"
  "$binary" --quiet repo --repo "$repo" export-key --binary > "$server/usr/share/keyrings/bench.gpg"
  printf 'Types: deb\nURIs: http://127.0.0.1:%s\nSuites: production\nComponents: main\nSigned-By: /usr/share/keyrings/bench.gpg\n' \
    "$port" > "$server/etc/apt/bench.d/bench.sources"
  server_apt update
  server_apt install --no-install-recommends "$2-production"
  release "$repo" "$2" "$4" 1.1
  server_apt update
  server_apt clean
  start=$(now)
  server_apt install --no-install-recommends "$2-production"
  upgrade_seconds=$(elapsed "$start" "$(now)")
  upgrade_fetched=$(cat "$server"/var/cache/apt/archives/*.deb | wc -c)
  kill "$serve_pid"
  wait "$serve_pid" 2>/dev/null || true
  serve_pid=""
  umount "$server/proc"
  rm -rf --one-file-system "$server"
  server=""
}

# report KIND WHAT BYTES_FROM: prints the table of one application and records its
# figures, from the variables the kind's loop set for both modes (first_time_true, ...,
# upgrade_time_false; the upgrade times are empty when not measured).
# shellcheck disable=SC2154 # set by eval in the loops
report() {
  bytes_ratio=$(ratio "$upgrade_bytes_true" "$upgrade_bytes_false" "%.4f")
  build_ratio=$(ratio "$second_time_true" "$first_time_true" "%.3f")
  printf 'layered releases, %s (%s), code-only release after a first one\n' "$1" "$2"
  printf '  %-40s %14s %14s\n' "" "layers" "one payload"
  printf '  %-40s %14s %14s\n' "first build (s)" "$first_time_true" "$first_time_false"
  printf '  %-40s %14s %14s\n' "code-only build (s)" "$second_time_true" "$second_time_false"
  printf '  %-40s %14s %14s\n' "bytes of the first release" "$first_bytes_true" "$first_bytes_false"
  printf '  %-40s %14s %14s\n' "bytes a server fetches to upgrade" "$upgrade_bytes_true" \
    "$upgrade_bytes_false"
  printf '    (%s)\n' "$3"
  printf '  upgrade bytes, layers / one payload: %s (target <= 0.01)\n' "$bytes_ratio"
  printf '  code-only build / first build, with layers: %s (target <= 0.10)\n' "$build_ratio"
  record "$1 code-only upgrade bytes" "one payload" "$upgrade_bytes_false" \
    "$upgrade_bytes_true" "$bytes_ratio" "<= 0.01" "$(at_most "$bytes_ratio" 0.01)" bytes
  record "$1 code-only build time" "first build" "$first_time_true" "$second_time_true" \
    "$build_ratio" "<= 0.10" "$(at_most "$build_ratio" 0.10)" s
  if [ "$1" = python ]; then
    if [ -n "$upgrade_time_true" ] && [ -n "$upgrade_time_false" ]; then
      time_ratio=$(ratio "$upgrade_time_true" "$upgrade_time_false" "%.3f")
      printf '  %-40s %14s %14s\n' "server upgrade, apt-get install (s)" "$upgrade_time_true" \
        "$upgrade_time_false"
      printf '  server upgrade time, layers / one payload: %s (target <= 0.5)\n' "$time_ratio"
      record "python server upgrade time" "one payload" "$upgrade_time_false" \
        "$upgrade_time_true" "$time_ratio" "<= 0.5" "$(at_most "$time_ratio" 0.5)" s
    else
      printf '  server upgrade time: not measured (needs root and %s)\n' "$build_root"
      record "python server upgrade time" "one payload" None None None "<= 0.5" None s
    fi
  fi
}

# --- Python ---------------------------------------------------------------------------

# write_python_app DIRECTORY VERSION LAYERS: the generated application at VERSION.
write_python_app() {
  mkdir -p "$1/numbers"
  printf '%s\n' "$pins" > "$1/requirements.txt"
  cat > "$1/pyproject.toml" <<EOF
[build-system]
requires = ["flit_core==3.9.0"]
build-backend = "flit_core.buildapi"

[project]
name = "numbers"
version = "$2"
description = "Generated for bench/layers.sh"

[project.scripts]
numbers = "numbers:main"
EOF
  cat > "$1/numbers/__init__.py" <<EOF
"""Prints its version."""


def main():
    print("numbers $2")
EOF
  cat > "$1/debstage.toml" <<EOF
[package]
name = "numbers"
version = "$2"
maintainer = "Bench <bench@example.com>"
description = "Generated application of bench/layers.sh"

[environment]
kind = "python"
interpreter = "/usr/bin/python3"
requirements = "requirements.txt"
project = "."

[layers]
enabled = $3
EOF
}

bench_python() {
  wheels="$bench_dir/layer-wheels/$(echo "$requirements" | tr ' =' '_-')"
  if [ ! -f "$wheels/.complete" ]; then
    echo "downloading $requirements and flit_core into $wheels (once)" >&2
    mkdir -p "$wheels"
    # shellcheck disable=SC2086 # the requirements are words
    /usr/bin/python3 -m pip download --disable-pip-version-check -q --only-binary :all: \
      -d "$wheels" $requirements flit_core==3.9.0
    touch "$wheels/.complete"
  fi
  # The application pins every wheel it was given (as pip-compile would), so that a
  # code-only release can take its layer from the cache.
  pins=$(cd "$wheels" && for wheel in *.whl; do
    name=${wheel%%-*}
    rest=${wheel#*-}
    case "$name" in flit_core) continue ;; esac
    echo "$name==${rest%%-*}"
  done)
  for layers in true false; do
    rm -rf "$work/app" "$work/cache"
    write_python_app "$work/app" 1.0 "$layers"
    first_time=$(build "$work/app/debstage.toml" "$work/first-$layers" \
      PIP_NO_INDEX=1 PIP_FIND_LINKS="$wheels")
    write_python_app "$work/app" 1.1 "$layers"
    second_time=$(build "$work/app/debstage.toml" "$work/second-$layers" \
      PIP_NO_INDEX=1 PIP_FIND_LINKS="$wheels")
    first_bytes=$(cat "$work"/first-$layers/*.deb | wc -c)
    upgrade "$layers" numbers "$work/first-$layers" "$work/second-$layers"
    if [ -n "$upgrade_seconds" ]; then
      upgrade_time=$upgrade_seconds
      upgrade_bytes=$upgrade_fetched
      bytes_from="apt's archive cache after apt-get install in a bookworm root"
    else
      upgrade_time=""
      upgrade_bytes=$(new_bytes "$work/first-$layers" "$work/second-$layers" numbers)
      bytes_from="the second build's packages the first lacks"
    fi
    eval "first_time_$layers=$first_time second_time_$layers=$second_time"
    eval "first_bytes_$layers=$first_bytes upgrade_bytes_$layers=$upgrade_bytes"
    eval "upgrade_time_$layers=$upgrade_time"
    rm -rf "$work/first-$layers" "$work/second-$layers"
  done
  report python "$requirements" "$bytes_from"
}

# --- Node -----------------------------------------------------------------------------

# write_node_app DIRECTORY VERSION LAYERS: the generated application at VERSION, its
# lockfile from the cached one.
write_node_app() {
  mkdir -p "$1"
  cp "$node_cache/package.json" "$node_cache/package-lock.json" "$1/"
  cat > "$1/server.js" <<EOF
const express = require('express');
const app = express();
app.get('/', (request, response) => response.send('webapp $2'));
app.listen(Number(process.env.PORT || 8080), '127.0.0.1');
EOF
  cat > "$1/debstage.toml" <<EOF
[package]
name = "webapp"
version = "$2"
maintainer = "Bench <bench@example.com>"
description = "Generated application of bench/layers.sh"

[environment]
kind = "node"

[layers]
enabled = $3
EOF
}

bench_node() {
  node_cache="$bench_dir/node-app/$(echo "$node_dependencies" | tr ' @/' '_+_')"
  if [ ! -f "$node_cache/.complete" ]; then
    echo "resolving $node_dependencies from the npm registry into $node_cache (once)" >&2
    rm -rf "$node_cache"
    mkdir -p "$node_cache"
    # shellcheck disable=SC2086 # the dependencies are words
    /usr/bin/python3 - "$node_cache/package.json" $node_dependencies <<'EOF'
import json, sys
dependencies = dict(item.rsplit("@", 1) for item in sys.argv[2:])
package = {"name": "webapp", "version": "1.0.0", "private": True, "dependencies": dependencies}
with open(sys.argv[1], "w") as out:
    out.write(json.dumps(package, indent=2) + "\n")
EOF
    (cd "$node_cache" && npm install --package-lock-only --no-audit --no-fund \
      --cache "$node_cache/npm-cache" >/dev/null)
    # Fills npm's cache with every tarball, so that the builds read no registry.
    (cd "$node_cache" && mkdir -p fill && cp package.json package-lock.json fill/ \
      && cd fill && npm ci --omit=dev --no-audit --no-fund --cache "$node_cache/npm-cache" \
      >/dev/null && cd .. && rm -rf fill)
    touch "$node_cache/.complete"
  fi
  for layers in true false; do
    rm -rf "$work/webapp" "$work/cache"
    write_node_app "$work/webapp" 1.0 "$layers"
    first_time=$(build "$work/webapp/debstage.toml" "$work/first-$layers" \
      npm_config_cache="$node_cache/npm-cache" npm_config_prefer_offline=true)
    write_node_app "$work/webapp" 1.1 "$layers"
    second_time=$(build "$work/webapp/debstage.toml" "$work/second-$layers" \
      npm_config_cache="$node_cache/npm-cache" npm_config_prefer_offline=true)
    first_bytes=$(cat "$work"/first-$layers/*.deb | wc -c)
    upgrade_bytes=$(new_bytes "$work/first-$layers" "$work/second-$layers" webapp)
    eval "first_time_$layers=$first_time second_time_$layers=$second_time"
    eval "first_bytes_$layers=$first_bytes upgrade_bytes_$layers=$upgrade_bytes"
    rm -rf "$work/first-$layers" "$work/second-$layers"
  done
  report node "$node_dependencies" "the second build's packages the first lacks"
}

for kind in $kinds; do
  case $kind in
    python) bench_python ;;
    node) bench_node ;;
    *) echo "bench/layers.sh: unknown kind '$kind' (python, node)" >&2; exit 2 ;;
  esac
done
