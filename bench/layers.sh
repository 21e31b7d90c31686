#!/bin/sh
# bench/layers.sh BINARY
#
# Layered releases (issue 21) against today's single payload, in the same run: a generated
# Python application whose dependencies are real wheels from PyPI (numpy, pandas and what
# they pull in, about 150 MB installed; downloaded once into target/bench/layer-wheels),
# built as a first release and then as a code-only release (one source line changed),
# once with layers and once with `[layers] enabled = false`.
#
# Printed side by side:
# - the bytes a production server downloads for the code-only upgrade: the packages of
#   the second build (the production stage package, the release, the layer) that the
#   first did not already have with the same name and bytes (what apt fetches;
#   e2e::layers checks with real apt that a code-only release fetches the release and the
#   stage package only);
# - the build time of the code-only release against the first build's.
#
# Knobs: BENCH_LAYER_REQUIREMENTS (default "numpy==1.26.4 pandas==2.2.3"; a smaller set
# such as "tabulate==0.9.0" checks the script in seconds), BENCH_DIR (target/bench).
set -eu

binary=${1:?usage: bench/layers.sh BINARY}
case "$binary" in /*) ;; *) binary="$PWD/$binary" ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
requirements=${BENCH_LAYER_REQUIREMENTS:-"numpy==1.26.4 pandas==2.2.3"}
bench_dir=${BENCH_DIR:-$root/target/bench}
wheels="$bench_dir/layer-wheels/$(echo "$requirements" | tr ' =' '_-')"
work=$(mktemp -d "${TMPDIR:-/tmp}/debstage-bench-layers.XXXXXX")
trap 'rm -rf "$work"' EXIT

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

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# write_app DIRECTORY VERSION LAYERS: the generated application at VERSION.
write_app() {
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

# build OUT: builds the application into OUT; prints the wall time.
build() {
  start=$(now)
  XDG_CACHE_HOME="$work/cache" PIP_NO_INDEX=1 PIP_FIND_LINKS="$wheels" \
    SOURCE_DATE_EPOCH=1700000000 \
    "$binary" --quiet build --manifest "$work/app/debstage.toml" --out "$1" >/dev/null
  elapsed "$start" "$(now)"
}

# new_bytes FIRST SECOND: the bytes of the .deb files in SECOND that FIRST lacks, for a
# production server (the other stages' packages left out).
new_bytes() {
  total=0
  for deb in "$2"/*.deb; do
    name=$(basename "$deb")
    case "$name" in numbers-test_* | numbers-staging_*) continue ;; esac
    if [ -f "$1/$name" ] && cmp -s "$1/$name" "$deb"; then
      continue
    fi
    total=$((total + $(stat -c %s "$deb")))
  done
  echo "$total"
}

for layers in true false; do
  rm -rf "$work/app" "$work/cache"
  write_app "$work/app" 1.0 "$layers"
  first_time=$(build "$work/first-$layers")
  write_app "$work/app" 1.1 "$layers"
  second_time=$(build "$work/second-$layers")
  first_bytes=$(cat "$work"/first-$layers/*.deb | wc -c)
  upgrade_bytes=$(new_bytes "$work/first-$layers" "$work/second-$layers")
  eval "first_time_$layers=$first_time second_time_$layers=$second_time"
  eval "first_bytes_$layers=$first_bytes upgrade_bytes_$layers=$upgrade_bytes"
done

# shellcheck disable=SC2154 # set by eval above
{
  printf 'layered releases (%s), code-only release after a first one\n' "$requirements"
  printf '  %-34s %14s %14s\n' "" "layers" "one payload"
  printf '  %-34s %14s %14s\n' "first build (s)" "$first_time_true" "$first_time_false"
  printf '  %-34s %14s %14s\n' "code-only build (s)" "$second_time_true" "$second_time_false"
  printf '  %-34s %14s %14s\n' "bytes of the first release" "$first_bytes_true" "$first_bytes_false"
  printf '  %-34s %14s %14s\n' "bytes a server fetches to upgrade" "$upgrade_bytes_true" \
    "$upgrade_bytes_false"
  printf '  upgrade bytes, layers / one payload: %s (target <= 0.01)\n' \
    "$(awk -v a="$upgrade_bytes_true" -v b="$upgrade_bytes_false" 'BEGIN { printf "%.4f", a / b }')"
  printf '  code-only build / first build, with layers: %s (target <= 0.10)\n' \
    "$(awk -v a="$second_time_true" -v b="$first_time_true" 'BEGIN { printf "%.3f", a / b }')"
}
