#!/bin/sh
# Regenerate pinbridge's shipped voice prompts, beeps and hold music.
#
# Usage:  sh prompts/make_prompts.sh            (writes into prompts/)
#
# Needs Debian's espeak-ng, espeak-ng-data and sox (plus awk, from base).
# The output is deterministic: the same package versions give the same bytes.
# Every file is RIFF WAV, PCM 16-bit signed little-endian, mono, 8000 Hz.
#
# Optional overrides (environment):
#   PROMPTS_OUT    output folder          (default: the folder of this script)
#   PROMPTS_VOICE  espeak-ng voice        (default: en-us+klatt5)
#   PROMPTS_SPEED  words per minute       (default: 155)
#   PROMPTS_PITCH  espeak pitch, 0..99    (default: 40)
#   PROMPTS_ONLY   "speech", "tones" or "music" to make one group only
#
# $SOX and $FMT are deliberately unquoted (they hold several words).
# shellcheck disable=SC2086
set -eu

LC_ALL=C
export LC_ALL

here=$(cd "$(dirname "$0")" && pwd)
out=${PROMPTS_OUT:-$here}
voice=${PROMPTS_VOICE:-en-us+klatt5}
speed=${PROMPTS_SPEED:-155}
pitch=${PROMPTS_PITCH:-40}
only=${PROMPTS_ONLY:-all}

# ---------------------------------------------------------------- tools ---
missing=""
command -v espeak-ng >/dev/null 2>&1 || missing="$missing espeak-ng espeak-ng-data"
command -v sox >/dev/null 2>&1 || missing="$missing sox"
command -v awk >/dev/null 2>&1 || missing="$missing mawk"
if [ -n "$missing" ]; then
    echo "make_prompts.sh: missing tools; install them with:" >&2
    echo "    apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
if ! espeak-ng -v "$voice" -q "test" >/dev/null 2>&1; then
    echo "make_prompts.sh: espeak-ng cannot load voice '$voice';" >&2
    echo "    apt-get install -y espeak-ng-data   (or set PROMPTS_VOICE to one" >&2
    echo "    listed by: espeak-ng --voices=en; mb-* voices also need mbrola)" >&2
    exit 1
fi

mkdir -p "$out"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pinbridge-prompts.XXXXXX")
trap 'rm -rf "$tmp"' EXIT HUP INT TERM

# -R: fixed random seed (sox's dither), so reruns give identical bytes.
SOX="sox -R -V2"
# The one output format for every file.
FMT="-t wav -e signed-integer -b 16 -c 1 -r 8000"

# ---------------------------------------------------------- speech ---
# render NAME TEXT LEAD_TRAIL_SECONDS
#   espeak-ng renders at its native 22050 Hz (amplitude 50: the klatt
#   voices clip at espeak's default 100); sox removes DC/rumble
#   (highpass 100), trims leading/trailing silence, resamples with the
#   very-high-quality band-limiting resampler, normalises to -3 dBFS peak
#   and pads LEAD_TRAIL_SECONDS of digital silence on both ends.
render() {
    name=$1 text=$2 pad=$3
    espeak-ng -v "$voice" -s "$speed" -p "$pitch" -a 50 -w "$tmp/$name.raw.wav" "$text"
    $SOX "$tmp/$name.raw.wav" $FMT "$tmp/$name.8k.wav" \
        gain -n -6 highpass 100 gain -n -3 \
        silence 1 0.004 -45d reverse silence 1 0.004 -45d reverse \
        rate -v 8000 gain -n -3
    $SOX "$tmp/$name.8k.wav" $FMT "$out/$name.wav" pad "$pad" "$pad"
}

# level_rms FILE -> RMS amplitude (0..1) as printed by `sox stat`
level_rms() {
    sox "$1" -n stat 2>&1 | awk '/^RMS +amplitude/ { print $3 }'
}

make_speech() {
    render welcome               "Welcome to the conference line."                                       0.08
    render enter_code            "Please enter the conference code, followed by the hash key."           0.08
    render code_incorrect        "That code is incorrect."                                               0.08
    render joining               "Thank you. Joining the conference now."                                0.08
    render goodbye               "Goodbye."                                                              0.08
    render unknown_caller        "Sorry, I don't recognize the number you're calling from."              0.08
    render enter_otp             "Please enter the six digit code sent to your device."                  0.08
    render try_again             "Please try again."                                                     0.08
    render correct               "That was correct. Joining conference."                                 0.08
    render waiting_for_moderator "Please wait. The conference will begin when the moderator arrives."    0.08
    render only_person           "You are currently the only person in this conference."                 0.08
    render muted                 "You are now muted."                                                    0.08
    render unmuted               "You are no longer muted."                                              0.08
    render locked_out            "Too many failed attempts. Please try again later."                     0.08
    render conference_full       "Sorry, this conference is full."                                       0.08
    render conference_ended      "The conference has ended."                                             0.08
    # Lead-ins that the IVR follows with digits or a recorded name: a
    # trailing comma gives a continuing (not final, falling) intonation.
    render participant_count     "The number of participants in this conference is,"                     0.08
    render your_code_is          "Your verification code is,"                                            0.08
    render repeat_code           "Again, your code is,"                                                  0.08
    render welcome_name          "Welcome,"                                                              0.08

    # Digits: trimmed tightly (30 ms each side) and matched in loudness:
    # each digit is brought to the same RMS, the lowest RMS any digit has
    # at -3 dBFS peak, so no digit peaks above -3 dBFS.
    set -- zero one two three four five six seven eight nine
    d=0
    for word in "$@"; do
        render "digit_$d" "$word" 0.03
        d=$((d + 1))
    done
    target=1
    d=0
    while [ $d -le 9 ]; do
        r=$(level_rms "$out/digit_$d.wav")
        target=$(awk -v a="$target" -v b="$r" 'BEGIN { printf "%.6f", (b < a ? b : a) }')
        d=$((d + 1))
    done
    d=0
    while [ $d -le 9 ]; do
        r=$(level_rms "$out/digit_$d.wav")
        g=$(awk -v t="$target" -v r="$r" 'BEGIN { printf "%.3f", 20 * log(t / r) / log(10) }')
        $SOX "$out/digit_$d.wav" $FMT "$tmp/digit.wav" gain "$g"
        mv "$tmp/digit.wav" "$out/digit_$d.wav"
        d=$((d + 1))
    done
}

# ------------------------------------------------------------ beeps ---
# Two 120 ms tones with 5 ms half-sine fades, -12 dBFS peak.
tone() { # FILE FREQ
    $SOX -n $FMT "$1" synth 0.12 sine "$2" gain -12 fade h 0.005 0.12 0.005
}
make_tones() {
    tone "$tmp/t440.wav" 440
    tone "$tmp/t660.wav" 660
    $SOX "$tmp/t440.wav" "$tmp/t660.wav" $FMT "$out/join_beep.wav"
    $SOX "$tmp/t660.wav" "$tmp/t440.wav" $FMT "$out/leave_beep.wav"
}

# ------------------------------------------------------------ music ---
# A slow eight-chord progression (Cmaj7 Am7 Fmaj7 G | Em7 Am7 Dm7 G),
# a soft pad of sines with a few harmonics plus a bell-like arpeggio, one
# chord per bar of 4 beats at 64 bpm: 8 bars = exactly 30 s.
#
# DTMF safety: no component at or above 1000 Hz is ever synthesised (and a
# steep low-pass at 1000 Hz removes what fades spread), so nothing can
# reach the DTMF high group (1209..1633 Hz): no dual tone is possible.
#
# Loop: the timeline is rendered with XF seconds of spill on both sides;
# the spill is wrapped around (tail mixed onto the start, head onto the
# end), so the loop is seamless; the first/last 20 ms are also faded.
BEAT=0.9375
BAR=3.75
LEN=30
XF=0.5
FMAX=1000

hz() { # semitones from A4 -> Hz
    awk -v n="$1" 'BEGIN { printf "%.4f", 440 * exp(n * log(2) / 12) }'
}

# note_file: one note, the sum of its partials below FMAX (weights for
# partials 1, 2, 3, ...), with the given fade envelope; 32-bit float.
note_file() { # FILE DURATION FADETYPE FADEIN FADEOUT SEMITONES WEIGHTS...
    f=$1 dur=$2 ftype=$3 fin=$4 fout=$5 n=$6
    shift 6
    base=$(hz "$n")
    synth="" remix="" k=1 ch=0
    for w in "$@"; do
        p=$(awk -v b="$base" -v k="$k" 'BEGIN { printf "%.4f", b * k }')
        if awk -v p="$p" -v m="$FMAX" 'BEGIN { exit !(p < m) }'; then
            ch=$((ch + 1))
            synth="$synth sine $p"
            remix="$remix${remix:+,}${ch}v$w"
        fi
        k=$((k + 1))
    done
    $SOX -n -t wav -e floating-point -b 32 -c "$ch" -r 8000 "$tmp/n.wav" synth "$dur" $synth
    $SOX "$tmp/n.wav" -t wav -e floating-point -b 32 -c 1 -r 8000 "$f" \
        remix "$remix" fade "$ftype" "$fin" "$dur" "$fout"
}

# place FILE START: pad so FILE starts at START on the spill timeline
nplaced=0
place() {
    nplaced=$((nplaced + 1))
    $SOX "$1" "$tmp/placed_$nplaced.wav" pad "$2" 0
}

make_music() {
    # bar: pad voicing (4 notes) | arpeggio (4 notes), semitones from A4
    cat > "$tmp/bars" <<'EOF'
-21 -14 -10 -5 | -5 -2 2 -2
-24 -17 -14 -9 | 0 3 7 3
-16 -12 -9 -5 | 0 3 7 3
-14 -10 -7 -2 | -2 2 5 2
-17 -10 -7 -2 | -2 2 5 2
-12 -5 -2 3 | 0 3 7 3
-19 -12 -9 -4 | -4 0 3 0
-14 -7 -4 2 | -2 2 5 -2
EOF
    bar=0
    while read -r p1 p2 p3 p4 _ a1 a2 a3 a4; do
        # pad chord: spans its bar plus XF on each side, long soft fades
        start=$(awk -v b="$bar" -v L="$BAR" 'BEGIN { printf "%.4f", b * L }')
        pdur=$(awk -v L="$BAR" -v x="$XF" 'BEGIN { printf "%.4f", L + 2 * x }')
        for n in $p1 $p2 $p3 $p4; do
            note_file "$tmp/pad_$n.wav" "$pdur" h 0.9 0.9 "$n" 0.6 0.2 0.07 0.03
        done
        $SOX -m "$tmp/pad_$p1.wav" "$tmp/pad_$p2.wav" "$tmp/pad_$p3.wav" "$tmp/pad_$p4.wav" \
            "$tmp/chord.wav"
        place "$tmp/chord.wav" "$start"
        # arpeggio: one bell-like note per beat, log decay over 1.4 s
        beat=0
        for n in $a1 $a2 $a3 $a4; do
            at=$(awk -v s="$start" -v x="$XF" -v b="$beat" -v B="$BEAT" \
                'BEGIN { printf "%.4f", s + x + b * B }')
            note_file "$tmp/arp.wav" 1.4 l 0.008 1.39 "$n" 0.7 0.18 0.05
            $SOX "$tmp/arp.wav" "$tmp/arp_v.wav" vol 0.45
            place "$tmp/arp_v.wav" "$at"
            beat=$((beat + 1))
        done
        bar=$((bar + 1))
    done < "$tmp/bars"

    total=$(awk -v L="$LEN" -v x="$XF" 'BEGIN { printf "%.4f", L + 2 * x }')
    i=1
    set --
    while [ $i -le $nplaced ]; do
        set -- "$@" -v 0.5 "$tmp/placed_$i.wav"
        i=$((i + 1))
    done
    $SOX -m "$@" "$tmp/line.wav" trim 0 "$total" sinc -a 90 -"$FMAX" highpass 80
    # wrap the spill around: mid + tail-at-start + head-at-end
    $SOX "$tmp/line.wav" "$tmp/mid.wav" trim "$XF" "$LEN"
    $SOX "$tmp/line.wav" "$tmp/head.wav" trim 0 "$XF" pad "$(awk -v L="$LEN" -v x="$XF" 'BEGIN { printf "%.4f", L - x }')" 0
    $SOX "$tmp/line.wav" "$tmp/tail.wav" trim "$(awk -v L="$LEN" -v x="$XF" 'BEGIN { printf "%.4f", L + x }')"
    $SOX -m -v 1 "$tmp/mid.wav" -v 1 "$tmp/head.wav" -v 1 "$tmp/tail.wav" "$tmp/loop.wav" \
        trim 0 "$LEN"
    # level: -18 dBFS RMS
    r=$(level_rms "$tmp/loop.wav")
    g=$(awk -v r="$r" 'BEGIN { printf "%.3f", -18 - 20 * log(r) / log(10) }')
    $SOX "$tmp/loop.wav" $FMT "$out/hold_music.wav" gain "$g" fade h 0.02 "$LEN" 0.02
}

case $only in
    all) make_speech; make_tones; make_music ;;
    speech) make_speech ;;
    tones) make_tones ;;
    music) make_music ;;
    *) echo "make_prompts.sh: PROMPTS_ONLY must be speech, tones or music" >&2; exit 2 ;;
esac

echo "make_prompts.sh: wrote prompts to $out (voice $voice, $speed wpm, pitch $pitch)"
