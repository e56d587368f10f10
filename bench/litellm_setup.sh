#!/usr/bin/env bash
# Create a separate virtualenv with LiteLLM Proxy 1.109.1 for side-by-side benchmarks.
#
# The venv lives OUTSIDE the repository (default /work/litellm-venv, override with LITELLM_VENV).
# `pip install 'litellm[proxy]==1.109.1'` does not resolve on this machine's package mirror
# (two pins are unavailable: certifi>=2026.10.19 and litellm-proxy-extras==0.4.113), so we install
# litellm itself with --no-deps and then its proxy requirements from a pinned list with certifi
# relaxed and litellm-proxy-extras==0.4.110 (see docs in shared/design/benchmarking.md).
#
# Usage: bash bench/litellm_setup.sh            (idempotent: skips when already installed)
#        LITELLM_VENV=/tmp/llv bash bench/litellm_setup.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${LITELLM_VENV:-/work/litellm-venv}"
PYTHON="${LITELLM_PYTHON:-python3}"
VERSION="1.109.1"

# Requirement list: the copy kept in bench/ (LITELLM_REQS overrides it).
REQS="${LITELLM_REQS:-$HERE/litellm-${VERSION}-proxy-requirements.txt}"
if [[ -z "$REQS" || ! -f "$REQS" ]]; then
  echo "litellm_setup: cannot find litellm-${VERSION}-proxy-requirements.txt" >&2
  exit 2
fi

if [[ "$(realpath -m "$VENV")/" == "$(cd "$HERE/.." && pwd)/"* ]]; then
  echo "litellm_setup: refusing to create the LiteLLM venv inside the repository ($VENV)" >&2
  exit 2
fi

MARKER="$VENV/.relaygate-bench-litellm"
if [[ -x "$VENV/bin/litellm" && "$(cat "$MARKER" 2>/dev/null)" == "$VERSION" ]]; then
  echo "litellm_setup: LiteLLM $VERSION already installed in $VENV"
  exit 0
fi

echo "litellm_setup: creating $VENV with $("$PYTHON" -V 2>&1)"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install --upgrade pip wheel >/dev/null

# Adapt the requirement list: relax certifi (the mirror may not carry the pinned floor) and pin
# litellm-proxy-extras to a version the mirror has.
ADAPTED="$(mktemp)"
trap 'rm -f "$ADAPTED"' EXIT
sed -E \
  -e 's/^certifi[^;]*/certifi/' \
  -e 's/^litellm-proxy-extras[^;]*/litellm-proxy-extras==0.4.110/' \
  "$REQS" > "$ADAPTED"

echo "litellm_setup: installing litellm==$VERSION --no-deps"
"${PIP[@]}" install "litellm==$VERSION" --no-deps
echo "litellm_setup: installing proxy requirements from $REQS (adapted)"
"${PIP[@]}" install -r "$ADAPTED"

LITELLM_LOCAL_MODEL_COST_MAP=True "$VENV/bin/python" -c "import litellm, litellm.proxy.proxy_server; print('litellm ok')" \
  || { echo "litellm_setup: import check failed" >&2; exit 1; }
echo "$VERSION" > "$MARKER"
echo "litellm_setup: done: $VENV/bin/litellm"
