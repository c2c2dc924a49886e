#!/usr/bin/env bash
# run.sh - medrek against the tools users would pick instead, interleaved
# (medrek, tool, medrek, tool, ...) in one run on one machine:
#   gen     llama.cpp (node-llama-cpp's prebuilt CPU build) vs mk_llama_decode
#           on the same GGUF files (125M F32 and Q8_0, GPT-2 tokenizer inside):
#           prefill of 256 tokens, 64 greedy tokens, at 2 and 1 threads
#   prefix  PyTorch vs mk_llama_forward/backward, 4 x (3 prefix + 128 tokens)
#   edit    PyTorch vs mk_editor_keys + mk_editor_values, 100 + 100 sentences
# Everything runs under nice with OMP_WAIT_POLICY=PASSIVE; the load average
# is recorded before every run. Results: $YARD/results.txt, then a summary.
#
#   bash bench/yardstick/run.sh [BENCH_BINARY]   (from the repository root)
# env: YARD (default /tmp/yard: models, encoder, node_modules), ROUNDS (3),
#      PARTS ("gen prefix edit"), NGEN (64), NPROMPT (256), SIZE (125m|1b),
#      DTYPES ("f32 q8_0"), THREADS ("2 1")
# Setup once (outside the repository):
#   NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --prefix /tmp/yard --ignore-scripts node-llama-cpp
set -euo pipefail
BIN=${1:-build-yard/bench_yardstick}
YARD=${YARD:-/tmp/yard}
ROUNDS=${ROUNDS:-3}
PARTS=${PARTS:-gen prefix edit}
NGEN=${NGEN:-64}
NPROMPT=${NPROMPT:-256}
SIZE=${SIZE:-125m}            # model of gen (prefix always uses 125m F32)
DTYPES=${DTYPES:-f32 q8_0}
THREADS=${THREADS:-2 1}       # thread counts of gen
HERE=$(cd "$(dirname "$0")" && pwd)
TORCH_PY=/usr/bin/python3
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$YARD/m"
RES=$YARD/results.txt
: > "$RES"

# run LABEL THREADS CMD...: one measurement, its RESULT line tagged
run() {
    local label=$1 th=$2
    shift 2
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    local line
    line=$(OMP_NUM_THREADS=$th nice "$@" 2>>"$YARD/stderr.txt" | grep '^RESULT ' | tail -1) || true
    if [ -z "$line" ]; then
        echo "FAILED $label threads=$th: $*" | tee -a "$RES"
        return 0
    fi
    echo "ROW $label $th $load ${line#RESULT }" >> "$RES"
    echo "$label threads=$th load=$load ${line:0:160}"
}

echo "# $(date -u) $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)" | tee -a "$RES"
echo "# uptime at start: $(uptime)" | tee -a "$RES"
need=""
case " $PARTS " in *" prefix "*) need="125m:f32" ;; esac
case " $PARTS " in *" gen "*) for dt in $DTYPES; do need="$need $SIZE:$dt"; done ;; esac
for m in $need; do
    f=$YARD/m/y${m%%:*}_${m##*:}.gguf
    [ -f "$f" ] || nice "$BIN" gguf "$f" "${m%%:*}" "${m##*:}" > /dev/null
done

for part in $PARTS; do
    for r in $(seq "$ROUNDS"); do
        case $part in
        gen)
            for dt in $DTYPES; do
                f=$YARD/m/y${SIZE}_$dt.gguf
                for th in $THREADS; do
                    run "gen-$dt" $th "$BIN" gen "$f" "$NPROMPT" "$NGEN"
                    run "gen-$dt" $th node "$HERE/llamacpp_bench.mjs" "$f" "$NPROMPT" "$NGEN" $th
                done
            done ;;
        prefix)
            run prefix 2 "$BIN" prefix "$YARD/m/y125m_f32.gguf" 4 128 3
            run prefix 2 "$TORCH_PY" "$HERE/torch_llama.py" --B 4 --L 128 --P 3 --threads 2 ;;
        edit)
            run edit 2 "$BIN" edit "$YARD/enc" 100 "$YARD/edit_ids.bin"
            run edit 2 "$TORCH_PY" "$HERE/torch_edit.py" "$YARD/edit_ids.bin" --threads 2 ;;
        esac
    done
done
echo "# uptime at end: $(uptime)" | tee -a "$RES"
python3 "$HERE/summarize.py" "$RES"
