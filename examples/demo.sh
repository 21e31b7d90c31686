#!/bin/sh
# make demo: the release story on the bundled example, with no root and no network.
# Builds examples/hello twice, carries it through a repository's stages, and prints
# where each stage stands and what a server needs.
set -eu

DEBSTAGE=$(realpath "${1:-target/release/debstage}")
EXAMPLE=$(realpath "$(dirname "$0")/hello")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/debstage-demo.XXXXXX")
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
export DEBSTAGE_REPO="$WORK/repo"

step() {
    printf '\n== %s\n' "$*"
}

step "Build hello 1.0 and 1.1 (payload + one stage package per stage)"
"$DEBSTAGE" build --manifest "$EXAMPLE/debstage.toml" --out "$WORK/out" --version 1.0
"$DEBSTAGE" build --manifest "$EXAMPLE/debstage.toml" --out "$WORK/out" --version 1.1

step "Create a repository with one suite per stage"
"$DEBSTAGE" repo init --stages test,staging,production --origin debstage-demo

step "Add 1.0 to test, promote it to staging and production"
"$DEBSTAGE" repo add --manifest "$WORK/out/hello_1.0-1.build.json"
"$DEBSTAGE" repo promote hello 1.0 staging
"$DEBSTAGE" repo promote hello 1.0 production

step "Add 1.1 to test, promote it to staging"
"$DEBSTAGE" repo add --manifest "$WORK/out/hello_1.1-1.build.json"
"$DEBSTAGE" repo promote hello 1.1

step "Where each stage stands"
"$DEBSTAGE" repo show hello

step "History"
"$DEBSTAGE" repo history hello

step "Check the pool and the signed indexes"
"$DEBSTAGE" repo verify

step "What a production server needs (serve with: debstage repo serve)"
"$DEBSTAGE" repo sources production --url http://127.0.0.1:8080 --app hello

step "Done"
echo "repository: $DEBSTAGE_REPO"
echo "packages:   $WORK/out"
