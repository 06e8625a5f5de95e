#!/usr/bin/env bash
# One-command setup: a virtual environment in .venv with srbench, DVC, MLflow and the test tools.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/srbench --help > /dev/null
echo "srbench is installed in .venv: activate it with '. .venv/bin/activate', then run 'dvc repro'."
