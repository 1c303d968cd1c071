#!/usr/bin/env bash
# Trains attention / position variants side by side on the device machine's host CPU (the CUDA
# backend does not exist yet), then evaluates each: perplexity on the test split at several window
# lengths (with evaluation-time position options) and the planted-pair retrieval task. Every run
# gets the same number of optimizer steps (equal training tokens), sized by a probe so that the
# slowest variant fits the time budget. Results (JSONL, logs) are packed into $OUT/results.tar.xz.
# Usage there: scripts/device_variants.sh SET TRAIN_SECONDS THREADS_PER_RUN
#   SET = attention (WikiText-2: softmax, tensorcoder, multilinear R=hd and R=d_model; PTB masked LM:
#                    bidirectional softmax vs bidirectional tensorcoder)
#       | position  (PTB at L=128: rope, 3d-rpe linear, 3d-rpe official, alibi; eval 1x..16x L)
# Made for scripts/pack_for_device.sh ../shared/data/ptb:../shared/data/wikitext-2.
set -uo pipefail
set_=$1; secs=$2; th=$3
R=/tmp/runs; mkdir -p /tmp/dev $R && tar -xJf devpack/pack.tar.xz -C /tmp/dev
clm() { /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path /tmp/dev/devlib /tmp/dev/devlib/clm "$@"; }
lscpu > $R/lscpu.txt
# test subsets (~20k tokens: the first 1000 PTB lines, 400 WikiText-2 lines) keep evaluation inside the call
S=/tmp/dev/sub; mkdir -p $S/ptb $S/wikitext-2
for f in ptb.train.txt ptb.valid.txt; do ln -sf /tmp/dev/devdata/ptb/$f $S/ptb/$f; done
for f in train.txt valid.txt; do ln -sf /tmp/dev/devdata/wikitext-2/$f $S/wikitext-2/$f; done
head -n 1000 /tmp/dev/devdata/ptb/ptb.test.txt > $S/ptb/ptb.test.txt
head -n 400 /tmp/dev/devdata/wikitext-2/test.txt > $S/wikitext-2/test.txt
MODEL="--d-model 256 --n-layers 4 --n-heads 4 --n-kv-heads 4 --d-ff 688 --tie-embeddings"
declare -A ARGS DATA
if [ "$set_" = attention ]; then
  L=256; BATCH=8
  c=wikitext-2
  ARGS[$c-softmax]="--attention causal"; DATA[$c-softmax]=$c
  ARGS[$c-tensorcoder]="--attention tensorcoder"; DATA[$c-tensorcoder]=$c
  ARGS[$c-ml-r64]="--attention multilinear"; DATA[$c-ml-r64]=$c
  ARGS[$c-ml-r256]="--attention multilinear --attention-opt rank=256"; DATA[$c-ml-r256]=$c
  ARGS[ptb-mlm-softmax]="--attention causal --attention-opt causal=false --objective mlm"; DATA[ptb-mlm-softmax]=ptb
  ARGS[ptb-mlm-tensorcoder]="--attention tensorcoder --attention-opt causal=false --objective mlm"; DATA[ptb-mlm-tensorcoder]=ptb
else
  L=128; BATCH=16
  ARGS[rope]="--position rope"; ARGS[3drpe]="--position 3d-rpe --position-opt chunk=32"
  ARGS[3drpe-official]="--position 3d-rpe --position-opt chunk=32 phase=official"; ARGS[alibi]="--position alibi"
  for k in "${!ARGS[@]}"; do DATA[$k]=ptb; done
fi
common() { echo "$MODEL --seq-len $L --max-seq-len $L --batch-size $BATCH --lr 1e-3 --warmup 50 --threads $th --sample-tokens 0 --eval-tokens 20000"; }
# probe: 6 steps of every run at once (the same contention as the real runs)
for k in "${!ARGS[@]}"; do
  ( s0=$(date +%s.%N); clm train --data /tmp/dev/devdata/${DATA[$k]} $(common) ${ARGS[$k]} --steps 6 --warmup 1 --eval-every 0 \
      --out $R/probe-$k >/dev/null 2>&1; s1=$(date +%s.%N); echo "$k $(python3 -c "print(($s1-$s0)/6)")" >> $R/probe.txt ) &
done; wait
slow=$(sort -k2 -g $R/probe.txt | tail -1 | awk '{print $2}')
steps=$(python3 -c "print(max(20, int($secs/$slow)))")
echo "probe (s/step incl. start-up): $(tr '\n' ' ' < $R/probe.txt) -> $steps steps each"
echo "steps $steps L $L batch $BATCH threads $th model $MODEL" > $R/setup.txt
for k in "${!ARGS[@]}"; do
  ( clm train --data /tmp/dev/devdata/${DATA[$k]} $(common) ${ARGS[$k]} --steps $steps --eval-every 0 --out $R/$k \
      > $R/$k.train.log 2>&1; echo "train $k rc=$?" ) &
done; wait
ev() {  # ev RUN DATA WINDOW [extra flags]: one JSON line into RUN.eval.jsonl
  local k=$1 d=$2 w=$3; shift 3
  clm eval --model $R/$k --data $S/$d --split test --window $w --batch-size 4 --threads $th --report $R/$k.eval.jsonl "$@" \
    >> $R/$k.eval.log 2>&1 || echo "eval $k $w $* failed" >> $R/$k.eval.log
}
for k in "${!ARGS[@]}"; do
  ( if [ "$set_" = attention ]; then
      case $k in *mlm*) ev $k ${DATA[$k]} $L --mlm;; *) ev $k ${DATA[$k]} $L;; esac
    else
      for m in 1 2 4 8 16; do
        w=$((L * m)); ev $k ptb $w --retrieval 12
        if [ $m -gt 1 ] && [ $k = rope ]; then
          for sc in pi ntk yarn; do ev $k ptb $w --position-opt scaling=$sc scale=$m; done
        fi
        if [ $m -gt 1 ] && [ $k = 3drpe ]; then ev $k ptb $w --position-opt scale=$m; fi
      done
    fi ) &
done; wait
for k in "${!ARGS[@]}"; do cp $R/$k/metrics.jsonl $R/$k.metrics.jsonl 2>/dev/null; done
tar -cJf $OUT/results.tar.xz -C $R $(cd $R && ls *.jsonl *.log *.txt)
ls -la $OUT
