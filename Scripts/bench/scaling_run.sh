#!/usr/bin/env bash
# The thread-scaling table on a machine with more cores, in one go: writes the reference
# checkpoint there (byte for byte the one made here, from the inputs `pack_portable.sh` copies),
# then runs `llava bench --threads 1,2,4,...` on it, int8 and F16, unmerged and PiToMe ρ = 0.9.
# Run from the project folder:
#
#   Scripts/bench/pack_portable.sh .device /work/bench-models/reference   # here
#   OUT=/some/folder Scripts/bench/scaling_run.sh [LLAVA]                  # there (LLAVA: .device/llava)
#
# Environment: OUT (results folder, default scaling-results), THREADS (default 1,2,4,8,16 and the
# machine's CPU count, those not above it), REPEAT (timed rounds, default 3), MODEL (checkpoint
# folder, made when it has no config.json; default $TMPDIR/llava-reference), INPUTS (default
# .device/reference-inputs), RUNS (default "q8 f16").
# Writes OUT/machine.txt (the CPU, its flags), and per run OUT/scaling-RUN.{txt,csv,json,svg,png}:
# the stage table, the scaling table with each stage's time on one thread, and the kernels used
# (the header line names the int8 kernels, "amx" among them where the CPU has AMX and the tile
# self-check passed).
set -euo pipefail
llava=${1:-.device/llava}
out=${OUT:-scaling-results}
model=${MODEL:-${TMPDIR:-/tmp}/llava-reference}
inputs=${INPUTS:-.device/reference-inputs}
repeat=${REPEAT:-3}
runs=${RUNS:-q8 f16}
cpus=$(getconf _NPROCESSORS_ONLN)
if [[ -z ${THREADS:-} ]]; then
    THREADS=$(for t in 1 2 4 8 16 32 64 "$cpus"; do ((t <= cpus)) && echo "$t"; done | sort -n | uniq | paste -sd, -)
fi
mkdir -p "$out"
{
    echo "cpus: $cpus"
    grep -m1 'model name' /proc/cpuinfo || true
    grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx512|amx|avx2|fma)' | paste -sd' ' - || true
    free -g 2>/dev/null | head -2 || true
} > "$out/machine.txt"
cat "$out/machine.txt" >&2

if [[ ! -f $model/config.json ]]; then
    python3 Scripts/bench/make_bench_checkpoint.py --shape reference --out "$model" --inputs-from "$inputs" \
        --threads "$cpus" --no-verify --force >&2
fi
question=$(cat "$model/question.txt")
for run in $runs; do
    case $run in
        q8) weights=(--quantize q8 --quantize-vision q8) ;;
        f16) weights=() ;;
        *) echo "scaling_run: unknown run $run (q8 or f16)" >&2; exit 2 ;;
    esac
    echo "scaling_run: $run, threads $THREADS, $repeat rounds" >&2
    "$llava" bench --model "$model" --image "$model/bench.png" --question "$question" --merge pitome \
        --ratios 1,0.9 --repeat "$repeat" --warmup 1 -n 16 --threads "$THREADS" "${weights[@]}" \
        --out "$out/scaling-$run" > "$out/scaling-$run.txt" 2>&1 || { tail -5 "$out/scaling-$run.txt" >&2; exit 1; }
    grep -E '^bench: /|^time to first token at' "$out/scaling-$run.txt" >&2
done
