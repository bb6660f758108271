#!/usr/bin/env bash
# Create .venv if missing, install tf_lrp, and explain the bundled demo data set with the bundled model.
set -euo pipefail
source "$(dirname "$0")/_venv.sh" ""
.venv/bin/tf-lrp demo "$@"
