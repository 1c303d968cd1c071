#!/usr/bin/env bash
# Trains attention / position variants side by side on the device machine's host CPU (16 cores;
# the CUDA backend does not exist yet): one single-threaded run per core (measured there: one
# thread per run is ~1.8x faster per run than four runs of four threads), OpenBLAS told the core
# type its dynamic dispatch misses on that virtual CPU (SkylakeX: +19%). Then evaluates every run
# (each evaluation its own single-threaded process, 16 at a time): perplexity on test subsets or
# whole splits at several windows (with evaluation-time position options), the planted-pair
# retrieval task, masked-LM loss. Results are re-packed into $OUT/results.tar.xz every 10 s, so a
# call cut short still returns what finished.
# Usage there: scripts/device_variants.sh TRAIN_CAP_SECONDS [STEP_SCALE] [PLAN]
#   PLAN s5 (default): session 5's set, short runs, test subsets (docs/RESULTS.md, issue #10)
#   PLAN s6: PTB and WikiText-2 attention runs evaluated on the whole valid and test splits, and
#            longer extrapolation runs (several runs stopped at the time cap: unequal tokens)
#   PLAN s7: the attention runs at step counts every variant finishes (equal tokens), and SEE
#            embeddings at 10-80x compression against factorised and hash embeddings (PTB); needs
#            units files packed as a folder named units (clm units ... --out units/ptb.wordnet.units)
#   PLAN s8: TSLM and LSTM against the transformer on PTB (0.28-0.29M tokens each), SEE with a
#            smaller factor init (std=0.3) and a higher learning rate, the factorised baseline
#            with balanced factors
# Made for scripts/pack_for_device.sh ../shared/data/ptb:../shared/data/wikitext-2[:units].
set -uo pipefail
cap=$1; scale=${2:-1}; plan=${3:-s5}
export OPENBLAS_CORETYPE=SkylakeX
R=/tmp/runs; rm -rf $R; mkdir -p /tmp/dev $R && tar -xJf devpack/pack.tar.xz -C /tmp/dev
clm() { /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path /tmp/dev/devlib /tmp/dev/devlib/clm "$@"; }
pack() { (cd $R && tar -cJf $OUT/results.tmp.tar.xz $(ls *.jsonl *.log *.txt 2>/dev/null) && mv $OUT/results.tmp.tar.xz $OUT/results.tar.xz); }
( while [ ! -f $R/.stop ]; do sleep 10; pack; done ) & packer=$!
lscpu > $R/lscpu.txt
# test subsets (~20k tokens: the first 1000 PTB lines, 400 WikiText-2 lines) keep evaluation inside the call
S=/tmp/dev/sub; mkdir -p $S/ptb $S/wikitext-2
for f in ptb.train.txt ptb.valid.txt; do ln -sf /tmp/dev/devdata/ptb/$f $S/ptb/$f; done
for f in train.txt valid.txt; do ln -sf /tmp/dev/devdata/wikitext-2/$f $S/wikitext-2/$f; done
head -n 1000 /tmp/dev/devdata/ptb/ptb.test.txt > $S/ptb/ptb.test.txt
head -n 400 /tmp/dev/devdata/wikitext-2/test.txt > $S/wikitext-2/test.txt
MODEL="--d-model 256 --n-layers 4 --n-heads 4 --n-kv-heads 4 --d-ff 688 --tie-embeddings --lr 1e-3 --warmup 30 --threads 1 --sample-tokens 0 --eval-tokens 20000 --eval-every 0"
# name | corpus | L | batch | steps | flags
case $plan in
s5) RUNS=(
  "pos-rope|ptb|128|16|210|--position rope"
  "pos-3drpe|ptb|128|16|210|--position 3d-rpe --position-opt chunk=32"
  "pos-3drpe-c64|ptb|128|16|210|--position 3d-rpe --position-opt chunk=64"
  "pos-3drpe-official|ptb|128|16|210|--position 3d-rpe --position-opt chunk=32 phase=official"
  "pos-alibi|ptb|128|16|210|--position alibi"
  "wt2-softmax|wikitext-2|256|8|160|--attention causal"
  "wt2-tensorcoder|wikitext-2|256|8|160|--attention tensorcoder"
  "wt2-ml-r64|wikitext-2|256|8|160|--attention multilinear"
  "wt2-ml-r256|wikitext-2|256|8|160|--attention multilinear --attention-opt rank=256"
  "mlm-softmax|ptb|256|8|160|--attention causal --attention-opt causal=false --objective mlm"
  "mlm-tensorcoder|ptb|256|8|160|--attention tensorcoder --attention-opt causal=false --objective mlm"
  "ml-split32|ptb|32|64|210|--attention multilinear --attention-opt mode=split_concat"
  "ml-causal32|ptb|32|64|210|--attention multilinear"
) ;;
s6) RUNS=(
  "pos-rope|ptb|128|16|340|--position rope"
  "pos-3drpe|ptb|128|16|340|--position 3d-rpe --position-opt chunk=32"
  "pos-3drpe-c64|ptb|128|16|340|--position 3d-rpe --position-opt chunk=64"
  "pos-3drpe-official|ptb|128|16|340|--position 3d-rpe --position-opt chunk=32 phase=official"
  "pos-alibi|ptb|128|16|340|--position alibi"
  "ptb-softmax|ptb|256|8|260|--attention causal"
  "ptb-tensorcoder|ptb|256|8|260|--attention tensorcoder"
  "ptb-ml-r64|ptb|256|8|260|--attention multilinear"
  "ptb-ml-r256|ptb|256|8|260|--attention multilinear --attention-opt rank=256"
  "wt2-softmax|wikitext-2|256|8|180|--attention causal"
  "wt2-tensorcoder|wikitext-2|256|8|180|--attention tensorcoder"
  "wt2-ml-r64|wikitext-2|256|8|180|--attention multilinear"
  "wt2-ml-r256|wikitext-2|256|8|180|--attention multilinear --attention-opt rank=256"
) ;;
s7) U=/tmp/dev/devdata/units  # clm units files, packed as a corpus folder named units
    SEE="--embedding see --embedding-opt order=3 rank=7"
    RUNS=(
  "ptb-softmax|ptb|256|8|180|--attention causal"
  "ptb-tensorcoder|ptb|256|8|180|--attention tensorcoder"
  "ptb-ml-r64|ptb|256|8|180|--attention multilinear"
  "ptb-ml-r256|ptb|256|8|180|--attention multilinear --attention-opt rank=256"
  "wt2-softmax|wikitext-2|256|8|120|--attention causal"
  "wt2-tensorcoder|wikitext-2|256|8|120|--attention tensorcoder"
  "wt2-ml-r64|wikitext-2|256|8|120|--attention multilinear"
  "wt2-ml-r256|wikitext-2|256|8|120|--attention multilinear --attention-opt rank=256"
  "ptb-see-wn-10x|ptb|256|8|180|$SEE rows=5200 units=$U/ptb.wordnet.units"
  "ptb-see-wn-20x|ptb|256|8|180|$SEE rows=2600 units=$U/ptb.wordnet.units"
  "ptb-see-wn-40x|ptb|256|8|180|$SEE rows=1300 units=$U/ptb.wordnet.units"
  "ptb-see-wn-80x|ptb|256|8|180|$SEE rows=650 units=$U/ptb.wordnet.units"
  "ptb-see-sw-20x|ptb|256|8|180|$SEE rows=2600 units=$U/ptb.subword.units"
  "ptb-see-hash-20x|ptb|256|8|180|$SEE rows=2600 units=hash"
  "ptb-fact-20x|ptb|256|8|180|--embedding factorized --embedding-opt k=12"
  "ptb-hashed-20x|ptb|256|8|180|--embedding hashed --embedding-opt buckets=422 hashes=2"
) ;;
s8) U=/tmp/dev/devdata/units
    SEE="--embedding see --embedding-opt order=3 rank=7 std=0.3"
    RNN="--n-layers 2 --init-std 0.05"
    RUNS=(
  "ptb-rnn-lstm-200|ptb|35|20|400|--arch lstm --d-model 200 $RNN"
  "ptb-rnn-lstm-400|ptb|35|20|400|--arch lstm --d-model 400 $RNN"
  "ptb-rnn-lstm-400-drop|ptb|35|20|400|--arch lstm --d-model 400 $RNN --dropout 0.5"
  "ptb-rnn-tslm-256|ptb|35|32|250|--arch tslm --d-model 256 $RNN"
  "ptb-rnn-tslm-512|ptb|35|32|250|--arch tslm --d-model 512 $RNN"
  "ptb-rnn-tslm-512-drop|ptb|35|32|250|--arch tslm --d-model 512 $RNN --dropout 0.5"
  "ptb-softmax-140|ptb|256|8|140|--attention causal"
  "ptb-softmax-lr3|ptb|256|8|140|--attention causal --lr 3e-3"
  "ptb-see-wn-10x-s03|ptb|256|8|140|$SEE rows=5200 units=$U/ptb.wordnet.units"
  "ptb-see-wn-20x-s03|ptb|256|8|140|$SEE rows=2600 units=$U/ptb.wordnet.units"
  "ptb-see-wn-80x-s03|ptb|256|8|140|$SEE rows=650 units=$U/ptb.wordnet.units"
  "ptb-see-hash-20x-s03|ptb|256|8|140|$SEE rows=2600 units=hash"
  "ptb-see-wn-20x-lr3|ptb|256|8|140|$SEE rows=2600 units=$U/ptb.wordnet.units --lr 3e-3"
  "ptb-fact-20x-bal|ptb|256|8|140|--embedding factorized --embedding-opt k=12"
) ;;
*) echo "unknown plan '$plan' (s5 | s6 | s7 | s8)"; exit 2 ;;
esac
echo "cap $cap s, step scale $scale; model $MODEL" > $R/setup.txt
pids=()
for r in "${RUNS[@]}"; do
  IFS='|' read -r k d L B st fl <<< "$r"; echo "$r" >> $R/setup.txt
  st=$(( (st * ${scale%/*}) / ${scale#*/} )); [ $st -lt 2 ] && st=2
  ( clm train --data /tmp/dev/devdata/$d $MODEL --seq-len $L --max-seq-len $L --batch-size $B --steps $st --time-budget $cap $fl \
      --out $R/$k > $R/$k.train.log 2>&1; echo "train $k rc=$?"; cp $R/$k/metrics.jsonl $R/$k.metrics.jsonl ) &
  pids+=($!)
done; wait "${pids[@]}"  # not the packer
# every evaluation: "RUN DATA_DIR SPLIT WINDOW flags..." one per line, run 16 at a time, each into its own report
F=/tmp/dev/devdata
E=$R/evals.txt; : > $E
for r in "${RUNS[@]}"; do
  IFS='|' read -r k d L B st fl <<< "$r"
  case $k in
    mlm-*) echo "$k $S/$d test $L --mlm" >> $E ;;
    pos-*) for m in 1 2 4 8 16; do
             w=$((L * m))
             if [ $m -le 8 ] && [ $plan = s5 ]; then echo "$k $S/$d test $w --retrieval 12" >> $E; else echo "$k $S/$d test $w" >> $E; fi
             if [ $m -gt 1 ] && [ $k = pos-rope ]; then for sc in pi ntk yarn; do echo "$k $S/$d test $w --position-opt scaling=$sc scale=$m" >> $E; done; fi
             if [ $m -gt 1 ] && [ $k = pos-3drpe ]; then echo "$k $S/$d test $w --position-opt scale=$m" >> $E; fi
           done ;;
    ptb-rnn-*) echo "$k $F/$d test 256" >> $E; echo "$k $F/$d valid 256" >> $E ;;  # as the transformers: windows of 256
    ptb-*|wt2-*) if [ $plan != s5 ]; then echo "$k $F/$d test $L" >> $E; echo "$k $F/$d valid $L" >> $E; else echo "$k $S/$d test $L" >> $E; fi ;;
    *) echo "$k $S/$d test $L" >> $E ;;
  esac
done
ev() {  # one line of evals.txt
  local k=$1 dir=$2 split=$3 w=$4; shift 4
  local tag="$k-$split-$w-$(echo "$*" | tr -c 'a-z0-9\n' '_')"
  clm eval --model $R/$k --data $dir --split $split --window $w --batch-size 4 --threads 1 --report $R/$tag.eval.jsonl "$@" \
    > $R/$tag.eval.log 2>&1 || echo "eval $k $split $w $* failed" >> $R/failed.log
}
export -f ev clm; export R S
xargs -P 16 -L 1 bash -c 'ev "$@"' _ < $E
touch $R/.stop; wait $packer; pack
cat $R/*.eval.jsonl > $R/all.eval.jsonl 2>/dev/null; pack
ls -la $OUT
