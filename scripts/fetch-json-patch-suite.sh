#!/usr/bin/env bash
# Fetch the public RFC 6902 conformance suite (npm package json-patch-test-suite) into
# <repo>/.cache/json-patch-test-suite/ for tests/rfc6902.rs. Needs npm and the npm registry.
# Does nothing when the files are already there.
set -euo pipefail

VERSION="1.1.0"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${JSON_PATCH_TEST_SUITE:-$REPO_ROOT/.cache/json-patch-test-suite}"

if [[ -f "$DEST/tests.json" && -f "$DEST/spec_tests.json" ]]; then
    echo "json-patch-test-suite already in $DEST"
    exit 0
fi

command -v npm >/dev/null || { echo "npm is required to fetch json-patch-test-suite" >&2; exit 1; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

(cd "$TMP" && npm pack --silent "json-patch-test-suite@$VERSION" >/dev/null)
TARBALL="$(ls "$TMP"/json-patch-test-suite-*.tgz)"
tar xzf "$TARBALL" -C "$TMP"

mkdir -p "$DEST"
for f in tests.json spec_tests.json; do
    [[ -f "$TMP/package/$f" ]] || { echo "$f missing from $TARBALL" >&2; exit 1; }
    cp "$TMP/package/$f" "$DEST/$f"
done
echo "json-patch-test-suite@$VERSION -> $DEST"
