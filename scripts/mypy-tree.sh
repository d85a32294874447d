#!/usr/bin/env bash
# Link build/mypy/btq/{schemas,producer,worker} to the repository's top-level folders.
#
# The packages install as btq.* through setuptools' package-dir mapping; an editable install resolves
# that with an import hook, which mypy does not run. mypy reads the same files through these links
# (pyproject.toml: mypy_path = "build/mypy"). Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p build/mypy/btq
for pkg in schemas producer worker; do
    ln -sfn "../../../$pkg" "build/mypy/btq/$pkg"
done
