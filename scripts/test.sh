#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
# Three workers on two cores: the browser tests wait on pages much of the time, and a third worker fills it.
# A test file runs whole on one worker (tests/conftest.py groups them, so its module fixtures are built once; the
# browser tests form one group, started first) except the hostile-input sweep, which is sharded. The 15 slowest
# tests are listed so slowness stays visible, and each rerun test is named (-rfER: failures, errors, reruns).
# pytest exits 5 when it collects nothing, so an empty run fails too.
python -m pytest -n 3 --dist loadgroup --durations=15 -rfER "$@"
