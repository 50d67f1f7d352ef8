#!/bin/sh
# Side-by-side accuracy of pinbridge's in-band DTMF detector and spandsp's
# dtmf_rx on exactly the same material.
#
# 1. builds dtmf_rx_file.c against Debian's libspandsp-dev (gcc, -lspandsp);
# 2. runs the accuracy report once with DTMF_DUMP_DIR set, which writes every
#    generated set (Q.24 tones in linear, mu-law and A-law; an hour of
#    espeak-ng speech; an hour of sox music plus the shipped hold music;
#    digits buried in speech at 20/10/6/3 dB SNR) as raw 8 kHz s16le with
#    its expected digits;
# 3. runs spandsp on every set (<set>.spandsp: "sample digit" per line);
# 4. runs the report again, which now prints spandsp's column beside ours.
#
# Usage: sh benches/spandsp/compare.sh        (from anywhere in the repo)
# Needs: gcc, libspandsp-dev, espeak-ng and sox (apt-get install -y
# libspandsp-dev espeak-ng sox); DTMF_DUMP_DIR overrides the work folder
# (default target/dtmf-compare).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${DTMF_DUMP_DIR:-${CARGO_TARGET_DIR:-$root/target}/dtmf-compare}

if ! printf "#include <spandsp.h>\n" | gcc -E -x c - >/dev/null 2>&1; then
    echo "compare.sh: spandsp headers missing: apt-get install -y libspandsp-dev" >&2
    exit 1
fi
mkdir -p "$dir"
bin="$dir/dtmf_rx_file"
gcc -O2 -Wall -Wextra -o "$bin" "$here/dtmf_rx_file.c" -lspandsp

cd "$root"
rm -f "$dir"/*.spandsp
echo "compare.sh: generating and dumping the material to $dir" >&2
DTMF_DUMP_DIR="$dir" cargo bench --bench dtmf_accuracy >/dev/null
n=0
for raw in "$dir"/*.raw; do
    "$bin" "$raw" >"${raw%.raw}.spandsp"
    n=$((n + 1))
done
echo "compare.sh: spandsp ran on $n sets" >&2
DTMF_DUMP_DIR="$dir" cargo bench --bench dtmf_accuracy 2>&1 |
    sed -n '/^criterion/,/^$/p'
