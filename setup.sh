#!/usr/bin/env bash
# One-command setup: a virtual environment in .venv with srbench, DVC, MLflow and the test tools,
# at the exact versions (and file hashes) of requirements.lock, made for CPython 3.11 on Linux x86_64.
#   ./setup.sh          torch and torchvision from PyPI (CUDA build: runs on the CPU too)
#   ./setup.sh --cpu    the same versions of torch and torchvision, CPU-only builds, from
#                       https://download.pytorch.org/whl/cpu (no CUDA libraries: about 4 GB less)
# PYTHON=python3.11 ./setup.sh picks the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")"
case "${1:-}" in
    "") cpu=false ;;
    --cpu) cpu=true ;;
    *) echo "usage: ./setup.sh [--cpu]" >&2; exit 2 ;;
esac
python=${PYTHON:-python3}
lock_platform='import platform, sys
sys.exit((platform.python_implementation(), sys.version_info[:2], platform.system(), platform.machine())
         != ("CPython", (3, 11), "Linux", "x86_64"))'
"$python" -c "$lock_platform" || {
    echo "setup.sh: requirements.lock is for CPython 3.11 on Linux x86_64, $python is not (set PYTHON=...); see README 'Setup'" >&2
    exit 1
}
"$python" -m venv .venv
# --no-compile, then compileall below on every core: pip compiles one file at a time (half of
# setup's time). The .pyc files must exist: where PYTHONDONTWRITEBYTECODE is set (this project's
# CI machines) Python never writes them, and every `srbench` process would compile torch, MLflow
# and DVC from source again (about 14 s each; the tests ran twice as long).
install=(.venv/bin/python -m pip install --quiet --no-deps --no-compile)
if $cpu; then
    # The lock without the torch stack (torch, torchvision and the CUDA libraries only torch needs) ...
    awk '/^[^ #]/ { skip = ($1 ~ /^(torch|torchvision|triton|nvidia-.*|cuda-.*)==/) } !skip' requirements.lock > .venv/requirements-cpu.lock
    "${install[@]}" --require-hashes -r .venv/requirements-cpu.lock
    # ... then the lock's torch and torchvision versions as CPU builds (no hashes: that index's files are not locked).
    "${install[@]}" --index-url https://download.pytorch.org/whl/cpu $(grep -Eo '^(torch|torchvision)==[^ ]+' requirements.lock | sed 's/$/+cpu/')
else
    "${install[@]}" --require-hashes -r requirements.lock
fi
"${install[@]}" --no-build-isolation -e .
# As pip does, a file written for a newer Python (torch ships a few) is left uncompiled.
.venv/bin/python -m compileall -q -j 0 .venv/lib > /dev/null 2>&1 || true
.venv/bin/python -m pip check
.venv/bin/srbench --help > /dev/null
echo "srbench is installed in .venv: activate it with '. .venv/bin/activate', then run 'dvc repro'."
