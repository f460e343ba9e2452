#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark (not a test): reel encoding N builtin:testsrc frames against the ffmpeg CLI
# encoding the same raw RGB24 frames with the same codec, preset and CRF, side by side,
# alternating runs, median of RUNS. Prints a Markdown table for docs/benchmarks.md.
#
# Usage: tools/bench_encode.sh [BUILD_DIR] (default build/default)
# Env:   SIZES="832x480 1280x720" FRAMES=81 RUNS=5 PRESET=medium CRF=23
set -euo pipefail
build=${1:-build/default}
reel=$build/cli/reel
raw_tool=$build/tools/reel_testsrc_raw
for p in "$reel" "$raw_tool"; do [[ -x $p ]] || { echo "missing $p: build first" >&2; exit 1; }; done
command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed" >&2; exit 1; }
sizes=${SIZES:-"832x480 1280x720"}
frames=${FRAMES:-81}
runs=${RUNS:-5}
preset=${PRESET:-medium}
crf=${CRF:-23}
seed=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "| size | frames | preset/crf | reel generate (s) | ffmpeg CLI (s) | ratio reel/ffmpeg | reel fps | reel bytes | ffmpeg bytes |"
echo "|---|---|---|---|---|---|---|---|---|"
for size in $sizes; do
  w=${size%x*}
  h=${size#*x}
  "$raw_tool" "$w" "$h" "$frames" "$seed" >"$work/frames.rgb"
  : >"$work/reel.t"
  : >"$work/ff.t"
  for ((i = 0; i < runs; i++)); do
    t0=$(now)
    "$reel" generate -q --seed $seed --size "$size" --frames "$frames" --fps 24 --preset "$preset" --crf "$crf" \
      -o "$work/reel.mp4" "benchmark"
    t1=$(now)
    ffmpeg -nostdin -v error -y -f rawvideo -pix_fmt rgb24 -s "$size" -r 24 -i "$work/frames.rgb" \
      -c:v libx264 -preset "$preset" -crf "$crf" -pix_fmt yuv420p -movflags +faststart "$work/ff.mp4"
    t2=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}' >>"$work/reel.t"
    awk -v a="$t1" -v b="$t2" 'BEGIN {print b - a}' >>"$work/ff.t"
  done
  r=$(median <"$work/reel.t")
  f=$(median <"$work/ff.t")
  awk -v s="$size" -v n="$frames" -v p="$preset/$crf" -v r="$r" -v f="$f" -v rb="$(stat -c %s "$work/reel.mp4")" \
    -v fb="$(stat -c %s "$work/ff.mp4")" \
    'BEGIN {printf "| %s | %d | %s | %.3f | %.3f | %.3f | %.1f | %d | %d |\n", s, n, p, r, f, r / f, n / r, rb, fb}'
done
