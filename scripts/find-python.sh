#!/usr/bin/env bash
# Prints the path of a Python interpreter of the version given (e.g. 3.13) that runs, or nothing
# (exit 1). Tried in order: python<version>, then python3, on PATH (each only if it runs as that version:
# a pyenv shim of a version pyenv has installed but not selected fails), then pyenv's installed versions
# (`pyenv root`), newest patch release first. The Makefile uses it to create .venv with the Lambda runtime's Python.
set -uo pipefail
want="${1:?usage: find-python.sh MAJOR.MINOR}"

runs_as_wanted() {
  "$1" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" >/dev/null 2>&1
}

for name in "python$want" python3; do
  if candidate="$(command -v "$name" 2>/dev/null)" && runs_as_wanted "$candidate"; then
    echo "$candidate"; exit 0
  fi
done
if root="$(pyenv root 2>/dev/null)" && [ -d "$root/versions" ]; then
  for dir in $(ls -d "$root/versions/$want".* 2>/dev/null | sort -rV); do
    if runs_as_wanted "$dir/bin/python$want"; then echo "$dir/bin/python$want"; exit 0; fi
  done
fi
exit 1
