# Sourced by scripts/run and scripts/test: create .venv and install the pinned requirements
# (re-installing only when a requirements file changed).
#   source scripts/_venv.sh runtime   # what running the server needs (requirements.txt)
#   source scripts/_venv.sh dev       # that and the test and lint tools (requirements-dev.txt)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
WANT_SET="${1:-dev}"
case "$WANT_SET" in
  runtime) REQ_FILES=(requirements.txt) ;;
  dev) REQ_FILES=(requirements.txt requirements-dev.txt) ;;
  *) echo "_venv.sh: unknown requirement set '$WANT_SET' (runtime or dev)" >&2; exit 64 ;;
esac
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
# One stamp per set: installing dev brings runtime up to date too, so running after testing installs nothing.
want="$(cat "${REQ_FILES[@]}" | sha256sum | cut -c1-16)"
have="$(cat ".venv/.requirements-$WANT_SET" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
  echo "==> installing $WANT_SET requirements (${REQ_FILES[*]})"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  args=()
  for f in "${REQ_FILES[@]}"; do args+=(-r "$f"); done
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "${args[@]}"
  echo "$want" > ".venv/.requirements-$WANT_SET"
  if [ "$WANT_SET" = dev ]; then cat requirements.txt | sha256sum | cut -c1-16 > .venv/.requirements-runtime; fi
fi
export PATH="$ROOT/.venv/bin:$PATH"
