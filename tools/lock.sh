#!/usr/bin/env bash
# Refresh requirements.lock: the exact version (and sha256) of every package that ./run_all.sh and
# ./run_tests.sh install by default (tools/ensure_venv.sh), for pyproject.toml's dependencies and
# its dev extra, resolved by uv for Python >= 3.11.5 on Linux, macOS and Windows at once (--universal).
#
#   tools/lock.sh                   re-resolve pyproject.toml, keeping every locked version that still
#                                   fits (run it after changing the dependencies)
#   tools/lock.sh --from-env PY     lock exactly the versions installed in the environment of python PY
#                                   (how the committed lock was made: tools/lock.sh --from-env .venv/bin/python)
#   tools/lock.sh --upgrade         the newest versions pyproject.toml's ranges allow (then rerun the study:
#                                   the committed results were made with the old versions)
#
# uv (pinned below) is installed with pip into $RENET_UV_DIR (default ~/.cache/renet_core/uv) on first
# use; it needs PyPI. Why uv and not pip-tools: docs/reproduction-notes.md, "The lock file".
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_VERSION=0.13.9
#: the oldest Python the locked set supports (soupsieve 4.1.3, under jupyterlab, needs 3.11.5)
PYTHON_FLOOR=3.11.5
uv_dir="${RENET_UV_DIR:-$HOME/.cache/renet_core/uv}"
uv="$uv_dir/bin/uv"
if [ ! -x "$uv" ] || [ "$("$uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "[lock] installing uv $UV_VERSION into $uv_dir"
  "${PYTHON:-python3}" -m pip install --quiet --upgrade --target "$uv_dir" "uv==$UV_VERSION"
fi

extra=()
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
case "${1:-}" in
  "") ;;
  --upgrade) extra+=(--upgrade) ;;
  --from-env)
    py="${2:?--from-env needs the python of the environment, e.g. .venv/bin/python}"
    # pip freeze --all: setuptools too; pip itself and the project (editable) are not locked
    "$py" -m pip freeze --all | grep '==' | grep -v -i -E '^(pip|renet[-_]core)==' > "$tmp/environment.txt"
    extra+=(--upgrade --constraints "$tmp/environment.txt") ;;
  *) echo "usage: tools/lock.sh [--upgrade | --from-env PYTHON]" >&2; exit 2 ;;
esac

cd "$repo"
"$uv" pip compile pyproject.toml --extra dev --universal --python-version "$PYTHON_FLOOR" --generate-hashes \
  --custom-compile-command "tools/lock.sh" --quiet "${extra[@]}" -o requirements.lock
# the constraints' temporary path in uv's "via" notes, named for what it was
sed -i.bak "s#-c $tmp/environment.txt#the environment's pip freeze (tools/lock.sh --from-env)#" requirements.lock
rm -f requirements.lock.bak
echo "[lock] wrote requirements.lock: torch $(grep -m1 '^torch==' requirements.lock | cut -d'=' -f3 | cut -d' ' -f1)," \
     "$(grep -c '^[a-z0-9]' requirements.lock) packages"
