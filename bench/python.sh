#!/bin/sh
# bench/python.sh BINARY [RUNS]
#
# Builds examples/pyapp with debstage and, in the same run, the plain baseline a person
# would script: /usr/bin/python3 -m venv + pip install of the same wheels from the same
# local wheel directory + dpkg-deb --root-owner-group -b with the same compressor (xz,
# level 6). Prints both wall times (best of RUNS, default 3) and the ratio.
#
# The baseline does less: its environment works only where it was built (no relocation),
# its .pyc files carry timestamps, and it detects no dependencies.
set -eu

binary=${1:?usage: bench/python.sh BINARY [RUNS]}
runs=${2:-3}
case "$binary" in /*) ;; *) binary="$PWD/$binary" ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
app="$root/examples/pyapp"
wheels="$root/target/pyapp-wheels"
work=$(mktemp -d "${TMPDIR:-/tmp}/debstage-bench-python.XXXXXX")
trap 'rm -rf "$work"' EXIT

if ! ls "$wheels"/pillow-11.0.0-*.whl "$wheels"/flit_core-3.9.0-*.whl >/dev/null 2>&1; then
  echo "downloading the example's wheels into $wheels" >&2
  /usr/bin/python3 -m pip download --disable-pip-version-check -q --only-binary :all: \
    -d "$wheels" Pillow==11.0.0 flit_core==3.9.0
fi

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
best() { awk -v old="$1" -v new="$2" 'BEGIN { print (old == "" || new + 0 < old + 0) ? new : old }'; }

debstage_once() {
  rm -rf "$work/debstage-out"
  PIP_NO_INDEX=1 PIP_FIND_LINKS="$wheels" SOURCE_DATE_EPOCH=1700000000 \
    "$binary" --quiet build --manifest "$app/debstage.toml" --out "$work/debstage-out" >/dev/null
}

baseline_once() {
  rm -rf "$work/baseline"
  release="$work/baseline/root/opt/pyapp/1.2.0"
  mkdir -p "$work/baseline/root/DEBIAN"
  /usr/bin/python3 -m venv "$release"
  PIP_NO_INDEX=1 PIP_FIND_LINKS="$wheels" "$release/bin/pip" install -q \
    --disable-pip-version-check -r "$app/requirements.txt" "$app"
  cp -a "$app/app/." "$release/"
  cat > "$work/baseline/root/DEBIAN/control" <<EOF
Package: pyapp-1.2.0
Version: 1.2.0-1
Architecture: $(dpkg --print-architecture)
Maintainer: Release Engineering <release@example.com>
Depends: python3.11
Description: Badge-drawing web service (baseline)
EOF
  dpkg-deb --root-owner-group -Zxz -z6 -b "$work/baseline/root" "$work/baseline/pyapp.deb" >/dev/null
}

debstage_best=""
baseline_best=""
run=1
while [ "$run" -le "$runs" ]; do
  start=$(now); debstage_once; end=$(now)
  debstage_best=$(best "$debstage_best" "$(elapsed "$start" "$end")")
  start=$(now); baseline_once; end=$(now)
  baseline_best=$(best "$baseline_best" "$(elapsed "$start" "$end")")
  run=$((run + 1))
done

payload=$(ls "$work"/debstage-out/pyapp-1.2.0_*.deb)
# With layers (issue 21) the dependencies are in pyapp-layer-<key>: the bytes compared
# with the baseline's one package are the release's and the layer's.
payload_bytes=$(cat "$payload" "$work"/debstage-out/pyapp-layer-*.deb 2>/dev/null | wc -c)
printf 'python example (examples/pyapp, Pillow 11.0.0), best of %s runs\n' "$runs"
printf '  debstage build (venv, pip, relocate, compile, ELF deps, 5 packages): %6.2f s  %s bytes\n' \
  "$debstage_best" "$payload_bytes"
printf '  baseline (venv + pip install + dpkg-deb -b, xz -6):                %6.2f s  %s bytes\n' \
  "$baseline_best" "$(stat -c %s "$work/baseline/pyapp.deb")"
printf '  ratio debstage / baseline: %.2f (target <= 1.10)\n' \
  "$(awk -v a="$debstage_best" -v b="$baseline_best" 'BEGIN { print a / b }')"
