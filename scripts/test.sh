#!/usr/bin/env bash
# Run every check CI runs: ruff, mypy (strict, src/), the import contracts, and the pytest suite
# (unit + integration against real processes, SQLite and the running PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
.venv/bin/lint-imports --no-cache  # the layer rules of docs/architecture.md (.importlinter)
set +e
.venv/bin/pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
