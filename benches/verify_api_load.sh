#!/usr/bin/env bash
# Verification API throughput and latency under wrk: starts and checks per
# second against a release build, server in process (temp SQLite database,
# a sender doing the log channel's work). Figures go to stdout; the lines
# starting with RESULT are the summary for BENCHMARKS.md.
#
#   benches/verify_api_load.sh [--duration SECS] [--connections N] [--threads N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v wrk >/dev/null; then
    echo "needs wrk: apt-get install -y wrk" >&2
    exit 2
fi
exec cargo bench --bench verify_api -- "$@"
