# Sourced by scripts/run and scripts/test: create .venv and install the pinned requirements
# (re-installing only when a requirements file changed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
want="$(cat requirements*.txt | sha256sum | cut -c1-16)"
have="$(cat .venv/.requirements-hash 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
  echo "==> installing requirements"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
  echo "$want" > .venv/.requirements-hash
fi
export PATH="$ROOT/.venv/bin:$PATH"
