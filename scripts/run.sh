#!/usr/bin/env bash
# Set up and run relaygate on its embedded default (SQLite under ./data, one process),
# seeded with a demo user, a key it prints, and emulator-backed channels.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/relaygate serve --demo --host "${HOST:-127.0.0.1}" --port "${PORT:-8080}" "$@"
