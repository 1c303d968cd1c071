#!/usr/bin/env bash
# Trains the models the KV-eviction harness (clm kv-bench) measures, on the device machine's host
# CPU (16 cores; no CUDA backend yet), several runs side by side, then sends back each run's final
# checkpoint (config, tokenizer, weights, optimizer and trainer state: resumable) as
# $OUT/models.tar.xz.part-*, split under the 16 MiB per-file limit, and the logs. Made for scripts/pack_for_device.sh CORPORA.
# Usage there: scripts/device_train.sh TRAIN_CAP_SECONDS PLAN
#   PLAN kv: an associative-recall model (corpus from tools/make_recall_corpus.py, packed as a
#            folder named recall) and a WikiText-2 model trained on 512-token windows
#   PLAN vlm: vision-language models on the rendered shapes task (two sizes), and associative-recall
#            models on two easier corpora (recall2: 16 keys of 256 per episode; recall3: 8 of 128)
#   PLAN vlm2: continues four of vlm's runs (packed as folders of the same names, with their
#            trainer state) with a shorter schedule, so that the learning rate decays, and a fresh
#            VLM at a lower rate. (Session 7 ran it on runs packed without their trainer state:
#            the four resumes failed; only the fresh run trained.)
set -uo pipefail
cap=$1; plan=${2:-kv}
export OPENBLAS_CORETYPE=SkylakeX
R=/tmp/runs; rm -rf $R; mkdir -p /tmp/dev $R && tar -xJf devpack/pack.tar.xz -C /tmp/dev
clm() { /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path /tmp/dev/devlib /tmp/dev/devlib/clm "$@"; }
lscpu > $R/lscpu.txt
D=/tmp/dev/devdata
# name | threads | flags
case $plan in
kv) RUNS=(
  "recall-l2|4|--data $D/recall --seq-len 512 --batch-size 8 --d-model 128 --n-layers 2 --n-heads 4 --n-kv-heads 2 --d-ff 344 --lr 2e-3 --warmup 100 --steps 100000"
  "recall-l4|4|--data $D/recall --seq-len 512 --batch-size 8 --d-model 128 --n-layers 4 --n-heads 4 --n-kv-heads 2 --d-ff 344 --lr 2e-3 --warmup 100 --steps 100000"
  "wt2-512|8|--data $D/wikitext-2 --seq-len 512 --batch-size 8 --d-model 256 --n-layers 4 --n-heads 8 --n-kv-heads 2 --d-ff 688 --tie-embeddings --lr 2e-3 --warmup 100 --steps 100000"
) ;;
vlm) RUNS=(
  "vlm-d256|6|--task shapes --seq-len 64 --batch-size 32 --d-model 256 --n-layers 4 --n-heads 8 --n-kv-heads 4 --d-ff 688 --lr 1.5e-3 --warmup 100 --steps 100000 --eval-every 500"
  "vlm-d128|4|--task shapes --seq-len 64 --batch-size 32 --d-model 128 --n-layers 4 --n-heads 4 --n-kv-heads 2 --d-ff 344 --lr 2e-3 --warmup 100 --steps 100000 --eval-every 500"
  "recall2-a|1|--data $D/recall2 --seq-len 256 --batch-size 16 --d-model 128 --n-layers 2 --n-heads 4 --n-kv-heads 2 --d-ff 344 --lr 1e-3 --warmup 200 --steps 100000"
  "recall2-b|1|--data $D/recall2 --seq-len 256 --batch-size 16 --d-model 128 --n-layers 3 --n-heads 4 --n-kv-heads 4 --d-ff 344 --lr 1e-3 --warmup 200 --weight-decay 0 --steps 100000"
  "recall3-a|2|--data $D/recall3 --seq-len 128 --batch-size 32 --d-model 128 --n-layers 2 --n-heads 4 --n-kv-heads 2 --d-ff 344 --lr 1e-3 --warmup 200 --steps 100000"
  "recall3-b|2|--data $D/recall3 --seq-len 256 --batch-size 16 --d-model 128 --n-layers 2 --n-heads 4 --n-kv-heads 2 --d-ff 344 --lr 3e-3 --warmup 200 --steps 100000"
) ;;
vlm2) for r in vlm-d128 vlm-d256 recall3-a recall2-a; do cp -r $D/$r $R/; done
  RUNS=(
  "vlm-d128|4|--task shapes --resume $R/vlm-d128 --steps 11000"
  "vlm-d256|6|--task shapes --resume $R/vlm-d256 --steps 6000"
  "recall3-a|2|--resume $R/recall3-a --steps 7000"
  "recall2-a|2|--resume $R/recall2-a --steps 5000"
  "vlm-d128-lr1|2|--task shapes --seq-len 64 --batch-size 32 --d-model 128 --n-layers 4 --n-heads 4 --n-kv-heads 2 --d-ff 344 --lr 1e-3 --warmup 100 --steps 5000 --eval-every 500"
) ;;
*) echo "unknown plan $plan"; exit 2 ;;
esac
for r in "${RUNS[@]}"; do
  IFS='|' read -r name thr flags <<< "$r"
  case $flags in *--task*|*--resume*) ev="";; *) ev="--eval-every 0 --eval-tokens 50000 --sample-tokens 0";; esac
  case $flags in *--resume*) outf="";; *) outf="--out $R/$name";; esac
  clm train $flags $outf --threads $thr --time-budget $cap $ev \
      --log-every 50 > $R/$name.log 2>&1 &
done
wait
cd $R
keep=()
for r in "${RUNS[@]}"; do
  name=${r%%|*}; s=$(cat $name/latest 2>/dev/null) || continue
  keep+=($name/metrics.jsonl $name/latest $name/$s)
done
tar -cf - "${keep[@]}" | xz -1 -T8 | split -b 15M - $OUT/models.tar.xz.part-
tar -cJf $OUT/logs.tar.xz *.log lscpu.txt
ls -la $OUT
