#!/usr/bin/env bash
# demo.sh - the main job: install what is missing, build, and run a short
# end-to-end smoke of medrek on the small models the project writes itself
# (tests/data: a random Llama in GGUF and Hugging Face layout, a random
# RoBERTa encoder). The models are random, so the answers are gibberish:
# what the demo shows is the mechanics - an edit is stored, retrieved with
# its similarity and margin, injected, listed, reverted, and audited.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
M=build/medrek
LLM=tests/data/llama/a.gguf
ENC=tests/data/editor/encoder
OUT=${OUT:-build/demo}
rm -rf "$OUT" && mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "medrek inspect $LLM"
$M inspect "$LLM" | head -n 25
step "medrek tokenize (the model's own tokenizer, from GGUF metadata)"
$M tokenize --tokenizer "$LLM" "Metformin is contraindicated when eGFR < 30 mL/min."
$M tokenize --tokenizer "$LLM" --ids "Metformin is contraindicated when eGFR < 30 mL/min."
step "medrek generate (greedy, GGUF and the same model as a Hugging Face directory)"
$M generate --model "$LLM" --prompt "The antidote for heparin is" --max-tokens 12
$M generate --model tests/data/llama/a_hf --prompt "The antidote for heparin is" --max-tokens 12

step "medrek editor init (random editor for this LLM)"
$M editor init --llm "$LLM" --encoder "$ENC" --out "$OUT/editor.safetensors" --rep-dim 64 --heads 4
cat > "$OUT/edits.jsonl" <<'JSON'
{"prompt": "The first-line drug for uncomplicated hypertension is", "target_new": "a thiazide diuretic", "source": "guideline 2026"}
{"prompt": "Metformin is contraindicated when eGFR falls below", "target_new": "30 mL/min"}
{"prompt": "The antidote for heparin overdose is", "target_new": "protamine sulfate"}
JSON
step "medrek edit (one batch, one transaction)"
$M edit --kb "$OUT/kb.db" --model "$LLM" --editor "$OUT/editor.safetensors" \
   --file "$OUT/edits.jsonl" --author demo --reason "smoke test"
step "medrek ask --compare"
$M ask --kb "$OUT/kb.db" --model "$LLM" --editor "$OUT/editor.safetensors" \
   --prompt "The antidote for heparin overdose is" --compare --max-tokens 8
step "medrek kb list / revert / history / stats / export"
$M kb list --kb "$OUT/kb.db"
$M kb revert 3 --kb "$OUT/kb.db" --author demo --reason "withdrawn"
$M kb history --kb "$OUT/kb.db"
$M kb stats --kb "$OUT/kb.db"
$M kb export --kb "$OUT/kb.db" --out "$OUT/export.jsonl" && wc -l "$OUT/export.jsonl"

step "medrek train (a few steps of the MedREK losses, spec 7) and medrek eval (spec 8)"
DATA=tests/data/eval/items.json
if [[ -f ../shared/datasets/medversa/train.json ]]; then DATA=../shared/datasets/medversa/train.json; fi
$M train --model "$LLM" --editor "$OUT/editor.safetensors" --data "$DATA" --out "$OUT/trained.safetensors" \
   --steps 4 --batch 4 --lr 1e-4 --log-every 1
EVAL=tests/data/eval/items.json
if [[ -f ../shared/datasets/medversa/test.json ]]; then EVAL=../shared/datasets/medversa/test.json; fi
$M eval --model "$LLM" --editor "$OUT/trained.safetensors" --data "$EVAL" --limit 20 --mode batch --n 10 \
   --fluency-tokens 20 --out "$OUT/eval.json"
echo
echo "demo: done (files in $OUT)"
