#!/usr/bin/env bash
# Builds the fuzz targets once and runs each for a bounded time.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 60; no TARGET means all of them. Each
# target starts from its committed seeds (fuzz/seeds/<target>, read only)
# plus a scratch corpus outside git that keeps what earlier runs found, so
# repeated long runs build on each other. Exit status: 0 when no target
# crashed, hung or ran out of memory, 1 when one did (the reproducer's path
# and the command to replay it are printed), 2 when the build failed.
#
# Environment:
#   FUZZ_TARGET_DIR  cargo target directory (default fuzz/target, ignored by git)
#   FUZZ_WORK_DIR    scratch corpora, crash artifacts and logs
#                    (default ${TMPDIR:-/tmp}/pinbridge-fuzz)
#   FUZZ_KEEP_GOING  1: do not stop a target at its first crash (libFuzzer
#                    fork mode); every crash is saved and the run still fails
#
# Needs a nightly toolchain (rustup toolchain install nightly) and cargo-fuzz
# (cargo install cargo-fuzz --version 0.13.2 --locked).
set -uo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$FUZZ_DIR")"
ALL_TARGETS=(sip_datagram sip_stream ua_sequence sdp rtp_dtmf rtp_receiver info_digest pcap config admission room_media)

SECONDS_PER_TARGET="${1:-60}"
if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -lt 1 ]; then
    echo "usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    echo "targets: ${ALL_TARGETS[*]}" >&2
    exit 2
fi
shift $(($# > 0 ? 1 : 0))
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=("${ALL_TARGETS[@]}")
fi
for t in "${TARGETS[@]}"; do
    if [[ ! " ${ALL_TARGETS[*]} " == *" $t "* ]]; then
        echo "unknown target '$t'; targets: ${ALL_TARGETS[*]}" >&2
        exit 2
    fi
done

# Longest input per target: room for a SIP dialogue, a few hundred RTP
# packets or a capture; small enough to keep executions fast.
max_len() {
    case "$1" in
        ua_sequence | rtp_dtmf | rtp_receiver | pcap) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

# Dictionaries of the tokens each format is made of.
dict() {
    case "$1" in
        sip_datagram | sip_stream) echo "$FUZZ_DIR/dict/sip.dict" ;;
        *) echo "$FUZZ_DIR/dict/$1.dict" ;;
    esac
}

TARGET_DIR="${FUZZ_TARGET_DIR:-$FUZZ_DIR/target}"
WORK="${FUZZ_WORK_DIR:-${TMPDIR:-/tmp}/pinbridge-fuzz}"
mkdir -p "$WORK"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz (and a nightly toolchain) are needed:" >&2
    echo "  rustup toolchain install nightly && cargo install cargo-fuzz --version 0.13.2 --locked" >&2
    exit 2
fi

echo "== building fuzz targets (target dir $TARGET_DIR)"
build_start=$(date +%s)
cd "$REPO" || exit 2
if [ ${#TARGETS[@]} -eq ${#ALL_TARGETS[@]} ]; then
    cargo +nightly fuzz build --target-dir "$TARGET_DIR" || exit 2
else
    for t in "${TARGETS[@]}"; do
        cargo +nightly fuzz build --target-dir "$TARGET_DIR" "$t" || exit 2
    done
fi
echo "== built in $(($(date +%s) - build_start)) s"

TRIPLE="$(rustc +nightly -vV | sed -n 's/^host: //p')"
BIN_DIR="$TARGET_DIR/$TRIPLE/release"

failed=()
summary=()
for t in "${TARGETS[@]}"; do
    corpus="$WORK/corpus/$t"
    artifacts="$WORK/artifacts/$t"
    log="$WORK/logs/$t.log"
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"

    args=(
        -max_total_time="$SECONDS_PER_TARGET"
        -max_len="$(max_len "$t")"
        -timeout=10
        -rss_limit_mb=2048
        -print_final_stats=1
        -artifact_prefix="$artifacts/"
    )
    if [ -f "$(dict "$t")" ]; then
        args+=(-dict="$(dict "$t")")
    fi
    if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then
        args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fi

    echo "== $t: ${SECONDS_PER_TARGET} s (log $log)"
    start=$(date +%s)
    "$BIN_DIR/$t" "${args[@]}" "$corpus" "$FUZZ_DIR/seeds/$t" >"$log" 2>&1
    status=$?
    elapsed=$(($(date +%s) - start))

    # Executions: the final stats, or in fork mode the last progress line.
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ -z "$execs" ]; then
        execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    fi
    new_artifacts=$(find "$artifacts" -type f -newermt "@$start" | sort)
    if [ "$status" -ne 0 ] || [ -n "$new_artifacts" ]; then
        failed+=("$t")
        summary+=("$(printf '%-13s %6s s %12s execs  FAILED (exit %s)' "$t" "$elapsed" "${execs:-?}" "$status")")
        echo "!! $t failed (exit $status). Last lines of its log:"
        grep -E 'ERROR|panicked|SUMMARY|Test unit written|^thread' "$log" | head -20
        tail -5 "$log"
        if [ -n "$new_artifacts" ]; then
            echo "!! reproducers (replay with: cargo +nightly fuzz run $t <file>, or $BIN_DIR/$t <file>):"
            echo "$new_artifacts" | sed 's/^/     /'
        fi
    else
        summary+=("$(printf '%-13s %6s s %12s execs  ok' "$t" "$elapsed" "${execs:-?}")")
    fi
done

echo "== summary (corpora in $WORK/corpus)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "== FAILED: ${failed[*]}"
    exit 1
fi
echo "== no crash"
