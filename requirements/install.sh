#!/usr/bin/env bash
# Install a lock into a virtual environment (`make run` and `make test` call this).
#
#   requirements/install.sh VENV LOCK
#
# torch and torchvision are the person's choice: a build already in VENV (a CUDA one, say) is
# kept, and only a VENV without torch gets one, from pip, which picks the build for this machine.
# Everything else is installed exactly as LOCK pins it, hashes checked, nothing resolved anew.
set -euo pipefail
venv=$1
lock=$2
here=$(cd "$(dirname "$0")" && pwd)
python=$venv/bin/python
PYTHON=${PYTHON:-python3}
PIP_TORCH=${PIP_TORCH:-torch torchvision}
# The project, installed editable after the lock ("" installs none: the installer's own tests).
PROJECT=${PROJECT-$here/..}

[ -x "$python" ] || "$PYTHON" -m venv "$venv"
# uv and the build backend, pinned like the rest.
"$python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
  -r "$here/tools.lock"

if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "install: no torch in $venv; pip picks one for this machine ($PIP_TORCH)"
  # shellcheck disable=SC2086
  "$python" -m pip install --disable-pip-version-check $PIP_TORCH
elif ! "$python" -c 'import torchvision' 2>/dev/null; then
  torch_version=$("$python" -c 'import torch; print(torch.__version__)')
  echo "install: $venv has torch $torch_version but no torchvision; install the torchvision" \
       "built for it from the same place (pip install torchvision --index-url ...), then rerun" >&2
  exit 1
else
  echo "install: keeping $venv's torch $("$python" -c 'import torch; print(torch.__version__)')"
fi

"$python" -m uv pip install --python "$python" --require-hashes --no-deps -r "$lock"
if [ -n "$PROJECT" ]; then
  "$python" -m uv pip install --python "$python" --no-deps --no-build-isolation -e "$PROJECT"
fi
"$python" -m uv pip check --python "$python"
