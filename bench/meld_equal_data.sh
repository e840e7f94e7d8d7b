#!/usr/bin/env bash
# The text models side by side on MELD at equal data: the same random N train rows (seed 42), the
# same epochs, selection and predictions on the full dev split. Made for a 2-core CPU, where the
# 110-135 M models cannot train on all 9,989 rows in a session; on a GPU drop --max_train_samples.
#
#   bash bench/meld_equal_data.sh [N=1000] [EPOCHS=3] [DATASET=data/meld_v2] [OUT=runs/meld-n1000]
#
# Dataset: textualize build-dataset --dataset meld --root ../shared/data/meld --modalities text
#          --context-turns 2 --template dialogue_v2 --out data/meld_v2
# Rows: MiniLM-L6 full, MPNet-base full (textualize fetch-model mpnet-base), SmolLM2-135M LoRA with
# a classification head and with the generative head (label strings scored). The encoders also see
# the next two turns (--future_turns 2, a second segment); the decoders see the chat messages (past
# turns only). Resumable: a finished row (run.json present) is skipped, an interrupted one resumes.
set -euo pipefail
N=${1:-1000}
EP=${2:-3}
DATA=${3:-data/meld_v2}
OUT=${4:-runs/meld-n$N}
PY=${PYTHON:-python}
common=(--dataset "$DATA" --max_train_samples "$N" --num_train_epochs "$EP" --seed 42
        --class_weighting none --per_device_train_batch_size 16 --per_device_eval_batch_size 32)

row() {
  local name=$1; shift
  if [[ -f "$OUT/$name/run.json" ]]; then echo "[skip] $OUT/$name (done)"; return; fi
  echo "[run] $name: $*"
  /usr/bin/time -v "$PY" llm/finetune.py "${common[@]}" --output_dir "$OUT/$name" "$@" \
    > "$OUT/$name.log" 2>&1 || { echo "[fail] $name: see $OUT/$name.log"; return 1; }
}

mkdir -p "$OUT"
row minilm     --learning_rate 1e-4 --future_turns 2 --max_length 160 --pooling auto
row mpnet      --model mpnet-base --learning_rate 5e-5 --future_turns 2 --max_length 160 --pooling auto
row smol-cls   --model smollm2-135m-instruct-gguf --method lora --learning_rate 3e-4 --max_length 256
row smol-gen   --model smollm2-135m-instruct-gguf --method lora --head generative --learning_rate 3e-4 --max_length 256
"$PY" -m eval compare "$OUT"/minilm "$OUT"/mpnet "$OUT"/smol-cls "$OUT"/smol-gen --split validation --out "$OUT/report"
