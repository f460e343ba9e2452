#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark (not a test): reel encoding N builtin:testsrc frames against the ffmpeg CLI
# encoding the same raw RGB24 frames with the same codec, preset and CRF, side by side,
# alternating runs, median of RUNS. Prints a Markdown table for docs/benchmarks.md with wall
# time and CPU time (user + system, from /usr/bin/time): on a loaded shared machine the wall
# time mostly measures the other processes, CPU time the work done.
#
# Usage: tools/bench_encode.sh [BUILD_DIR] (default build/default)
# Env:   SIZES="832x480 1280x720" FRAMES=81 RUNS=5 CODECS="h264 hevc av1 vp9"
#        PRESET=... CRF=... (override every codec's default preset / CRF)
#
# Each codec runs at reel's defaults unless overridden: h264 medium/23, hevc medium/28,
# av1 8/35 (SVT-AV1 preset), vp9 4/31 (cpu-used, deadline good, row-mt). The CLI gets the
# same encoder options reel sets (x265 log-level=error, VP9 deadline/row-mt/b:v 0, and on
# AVX-512 machines x264 asm=AVX2, which reel uses there because x264's AVX-512 code reads
# uninitialised memory), reel's keyframe interval (-g 48: 2 s at 24 fps; the encoders' own
# defaults are 128..250 frames), MP4 with faststart. Both pick their own thread counts.
set -euo pipefail
build=${1:-build/default}
reel=$build/cli/reel
raw_tool=$build/tools/reel_testsrc_raw
for p in "$reel" "$raw_tool"; do [[ -x $p ]] || { echo "missing $p: build first" >&2; exit 1; }; done
command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "needs /usr/bin/time (Debian package time)" >&2; exit 1; }
sizes=${SIZES:-"832x480 1280x720"}
frames=${FRAMES:-81}
runs=${RUNS:-5}
codecs=${CODECS:-h264}
seed=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SVT_LOG=1 # SVT-AV1's banner, for both (reel's CLI sets the same)

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# Column 1 of a "wall user sys" file, or user + sys.
wall() { awk '{print $1}' "$1" | median; }
cpu() { awk '{print $2 + $3}' "$1" | median; }
x264_asm=""
grep -qw avx512f /proc/cpuinfo && x264_asm="-x264-params asm=AVX2"

# Prints "preset crf ffmpeg-args" for a codec (preset/crf after overrides).
codec_args() {
  local c=$1 p c_crf
  case $c in
    h264) p=${PRESET:-medium}; c_crf=${CRF:-23}; echo "$p $c_crf -c:v libx264 -preset $p -crf $c_crf $x264_asm" ;;
    hevc) p=${PRESET:-medium}; c_crf=${CRF:-28}
      echo "$p $c_crf -c:v libx265 -preset $p -crf $c_crf -x265-params log-level=error -tag:v hvc1" ;;
    av1) p=${PRESET:-8}; c_crf=${CRF:-35}; echo "$p $c_crf -c:v libsvtav1 -preset $p -crf $c_crf" ;;
    vp9) p=${PRESET:-4}; c_crf=${CRF:-31}
      echo "$p $c_crf -c:v libvpx-vp9 -cpu-used $p -deadline good -row-mt 1 -crf $c_crf -b:v 0" ;;
    *) echo "unknown codec $c" >&2; exit 1 ;;
  esac
}

echo "| codec | size | frames | preset/crf | reel wall (s) | ffmpeg wall (s) | wall ratio | reel CPU (s) | ffmpeg CPU (s) | CPU ratio | reel bytes | ffmpeg bytes |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for size in $sizes; do
  w=${size%x*}
  h=${size#*x}
  "$raw_tool" "$w" "$h" "$frames" "$seed" >"$work/frames.rgb"
  for codec in $codecs; do
    read -r preset crf ffargs <<<"$(codec_args "$codec")"
    : >"$work/reel.t"
    : >"$work/ff.t"
    for ((i = 0; i < runs; i++)); do
      /usr/bin/time -f "%e %U %S" -a -o "$work/reel.t" "$reel" generate -q --seed $seed --size "$size" \
        --frames "$frames" --fps 24 --codec "$codec" --preset "$preset" --crf "$crf" -o "$work/reel.mp4" "benchmark"
      # shellcheck disable=SC2086
      /usr/bin/time -f "%e %U %S" -a -o "$work/ff.t" ffmpeg -nostdin -v error -y -f rawvideo -pix_fmt rgb24 \
        -s "$size" -r 24 -i "$work/frames.rgb" $ffargs -g 48 -pix_fmt yuv420p -movflags +faststart "$work/ff.mp4"
    done
    awk -v c="$codec" -v s="$size" -v n="$frames" -v p="$preset/$crf" -v rw="$(wall "$work/reel.t")" \
      -v fw="$(wall "$work/ff.t")" -v rc="$(cpu "$work/reel.t")" -v fc="$(cpu "$work/ff.t")" \
      -v rb="$(stat -c %s "$work/reel.mp4")" -v fb="$(stat -c %s "$work/ff.mp4")" \
      'BEGIN {printf "| %s | %s | %d | %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %d | %d |\n", c, s, n, p, rw, fw,
              rw / fw, rc, fc, rc / fc, rb, fb}'
  done
done
