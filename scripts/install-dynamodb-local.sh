#!/usr/bin/env bash
# Fetch AWS's DynamoDB Local (the jar and its native libraries) from the npm
# package amplify-dynamodb-simulator, which bundles it in emulator/.
# Usage: scripts/install-dynamodb-local.sh <version> <jar-sha256> <destination>
set -euo pipefail
version="$1"
jar_sha256="$2"
dest="$3"
if [ -f "$dest/DynamoDBLocal.jar" ] && [ "$(cat "$dest/.version" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "error: npm is required to fetch DynamoDB Local (install Node.js 18+ with npm)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "Fetching DynamoDB Local (amplify-dynamodb-simulator@$version) ..."
if ! (cd "$work" && npm pack --silent "amplify-dynamodb-simulator@$version" >/dev/null); then
  # --silent leaves npm's own reason out: say what failed and where to look.
  echo "error: npm could not fetch amplify-dynamodb-simulator@$version: is the npm registry reachable (network, proxy, npm config get registry)? Run npm pack amplify-dynamodb-simulator@$version to see npm's reason" >&2
  exit 1
fi
tar -xzf "$work"/amplify-dynamodb-simulator-"$version".tgz -C "$work" package/emulator
# Refuse a jar that is not the one this project was tested with.
actual="$(python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$work/package/emulator/DynamoDBLocal.jar")"
if [ "$actual" != "$jar_sha256" ]; then
  echo "error: DynamoDBLocal.jar from amplify-dynamodb-simulator@$version has sha256 $actual, expected $jar_sha256 (the Makefile's DYNAMODB_LOCAL_JAR_SHA256): not installing a jar this project was not tested with" >&2
  exit 1
fi
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$work/package/emulator" "$dest"
echo "$version" > "$dest/.version"
echo "DynamoDB Local installed in $dest"
