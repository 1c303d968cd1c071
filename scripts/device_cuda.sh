#!/usr/bin/env bash
# The CUDA backend on the device machine (an H200): made for a pack built by
#   cmake -S . -B build-cuda -G Ninja -DCLM_CUDA=ON && cmake --build build-cuda
#   BUILD=build-cuda scripts/pack_for_device.sh ../shared/data/wikitext-2 build-cuda/tests/test_cuda build-cuda/bench/clm_bench_train
# Usage there: scripts/device_cuda.sh STAGE...   (results under $OUT)
#   test    the GPU-vs-CPU test suite (tests/test_cuda.cpp)
#   bench   training throughput, clm_bench_train --device cuda vs bench/torch_train.py --device cuda
#           (PyTorch eager, with and without fused SDPA attention, f32 and TF32), alternating rounds
#   train   clm train --device cuda on WikiText-2 (TRAIN_STEPS, capped at TRAIN_S seconds), then the test
#           perplexity of its checkpoint with clm eval on the GPU and on the host CPU
#   resume  two identical GPU runs, one resumed midway: the final weights must be the same bytes
#   decode  batch-1 decoding: clm_bench_decode_cuda against transformers (bench/hf_decode_cuda.py) on a
#           ~110M and a 1B-class Llama, alternating (COMPILE=1 adds transformers' static cache +
#           torch.compile); then clm generate --device cuda against --device cpu on stories260K
#           (pack it as a second corpus folder: ../shared/data/wikitext-2:../shared/models/stories260K);
#           SHAPES="--dim .. --layers ..;..." other shapes, QUANT="w8a8 nvfp4 arcquant" adds those rows, PEER=0 skips
#           transformers; with WikiText-2 packed too, CrossQuant, NVFP4 and ARCQuant perplexity on the GPU and
#           the CPU (EVAL_DEVICES=cuda: the GPU only)
#   gemm    clm_bench_gemm_cuda: bf16, FP8 and INT8 tensor-core GEMMs at 2048^3 .. 8192^3
#   quant   NVFP4 and ARCQuant perplexity on the GPU (QMODEL: a checkpoint folder packed in devdata)
#   outliers a ~100M model trained here, its checkpoints quantized: ARCQuant's gain against the outliers' strength
#   serve   clm serve --device cuda and --device cpu on stories260K: the same greedy completion
#   recurrent TSLM (its code's SGD recipe) and the medium LSTM on PTB, side by side, then their perplexity
#           (REC_CORPUS=wikitext-2 REC_STEPS_TSLM=186500 REC_STEPS_LSTM=116376: the same epochs on WikiText-2)
#   passkey issue #10's retrieval across lengths (pack ../shared/data/ptb): five position encodings trained side by
#           side on one GPU at L = 256 on PTB with planted pairs (tools/make_passkey_corpus.py), PK_STEPS steps each
#           (capped at PK_S seconds), then test perplexity and the planted-pair retrieval at 1x-8x L, with
#           evaluation-time PI / NTK / YaRN for rope and its own interpolation for 3D-RPE (PK_POS: a subset of
#           rope 3drpe-c64 3drpe-c32 3drpe-c32-official alibi; PK_EVERY / PK_SPAN: the plants; PK_LR;
#           PK_SYNTH=F:K PK_WORDS=N: the synthetic corpus instead of PTB; PK_REPEAT=LO:HI: its repeated lines)
#   copyprobe which training corpora teach a model to copy (issue #10): CP_RUNS="name=make_passkey_corpus flags;..."
#           one RoPE model per corpus (the passkey stage's shape, PK_LR), side by side for CP_S seconds, then retrieval at
#           1x and 2x L (CP_TRIALS trials); e.g. CP_RUNS="rep=--synthetic 256:256 --repeat 8:64 --words 20000000"
#           (flags starting with "recall": tools/make_recall_corpus.py's, e.g. "kv=recall --keys 128 --values 32")
#   longctx issue #12's long-context model: WikiText-2 at 2048 tokens (LC_SEQ, LC_STEPS, LC_S), its weights back in parts
#   dp      (the two-GPU machine) --gpus 2 against one GPU: the same losses at twice the batch, and the speed-up
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
mkdir -p /tmp/dev && tar -xJf devpack/pack.tar.xz -C /tmp/dev
# cuBLAS from the image's toolkit, the driver from wherever the image mounts it.
cudalib=$(dirname "$(find /usr/local/cuda*/ /usr/lib /opt -name 'libcublas.so.13*' 2>/dev/null | head -1)")
drvlib=$(dirname "$(find /usr/local/nvidia /usr/lib /usr/lib64 -name 'libcuda.so.1' 2>/dev/null | head -1)")
nccllib=$(dirname "$(find / -name 'libnccl.so.2*' -not -path '/proc/*' 2>/dev/null | head -1)")
LIBP=/tmp/dev/devlib:$cudalib:$drvlib:$nccllib
run() { local b=$1; shift; /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path "$LIBP" /tmp/dev/devlib/$b "$@"; }
# The image's NCCL needs the image's newer C library: data-parallel runs start under the system's
# loader, with the pack's libraries minus its C and C++ runtimes.
mkdir -p /tmp/dev/devlib2
for f in /tmp/dev/devlib/*.so*; do
  case $(basename "$f") in libc.so*|libm.so*|ld-linux*|libstdc++*|libgcc_s*|libpthread*|libdl*|librt*) ;; *) ln -sf "$f" /tmp/dev/devlib2/ ;; esac
done
rundp() { local b=$1; shift; LD_LIBRARY_PATH=/tmp/dev/devlib2:$cudalib:$drvlib:$nccllib /tmp/dev/devlib/$b "$@"; }
echo "cuBLAS from $cudalib, driver from $drvlib, NCCL from $nccllib"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
b() { echo "== $*" | tee -a $OUT/bench.log; "$@" 2>>$OUT/bench.err | tee -a $OUT/bench.jsonl; }
for stage in "$@"; do
case $stage in
test)
  run test_cuda --gtest_filter="${TEST_FILTER:-*}" --gtest_output=json:$OUT/test_cuda.json 2>&1 | tee $OUT/test_cuda.log | tail -40 ;;
bench)
  # The reference CPU shape, then a ~125M-parameter Llama at sequence 1024 (issue #13's bar).
  small="--d-model 256 --n-layers 6 --n-heads 8 --n-kv-heads 4 --d-ff 688 --batch 8 --seq 256"
  big="--vocab 32000 --d-model 768 --n-layers 12 --n-heads 12 --n-kv-heads 4 --d-ff 2048 --batch 8 --seq 1024"
  for r in $(seq ${ROUNDS:-2}); do
    b run clm_bench_train --device cuda --steps 10 --warmup 3 $small
    b python3 bench/torch_train.py --device cuda --steps 10 --warmup 3 $small
    for mode in "" "--tf32" "--bf16"; do
      b run clm_bench_train --device cuda --steps 10 --warmup 3 $big $mode
      b python3 bench/torch_train.py --device cuda --steps 10 --warmup 3 $big $mode
      b python3 bench/torch_train.py --device cuda --sdpa --steps 10 --warmup 3 $big $mode
    done
  done
  [ -n "${COMPILE:-}" ] && b python3 bench/torch_train.py --device cuda --sdpa --compile --bf16 --steps 10 --warmup 5 $big
  ;;
train)
  # A 40M-parameter model (tied embeddings; MODEL= other shape flags) on WikiText-2, then its test
  # perplexity on the GPU and, from the same checkpoint, on the host CPU (the two must agree).
  W=/tmp/dev/devdata/wikitext-2
  run clm train --device cuda ${TRAIN_FLAGS:-} --data $W --out /tmp/run-gpu \
    ${MODEL:---d-model 512 --n-layers 8 --n-heads 8 --n-kv-heads 4 --d-ff 1376 --lr 1e-3} --tie-embeddings --seq-len 256 \
    --batch-size 32 --warmup 100 --steps ${TRAIN_STEPS:-1500} --eval-every 250 --time-budget ${TRAIN_S:-300} --sample-tokens 40 2>&1 |
    tr '\r' '\n' | grep -v '^step ' | tee $OUT/train.log | tail -20
  cp /tmp/run-gpu/metrics.jsonl $OUT/train_metrics.jsonl
  for d in ${EVAL_DEVICES:-cuda cpu}; do
    t0=$SECONDS
    run clm eval --device $d --model /tmp/run-gpu --data $W --split test --window 256 --batch-size 16 \
      --report $OUT/eval.jsonl 2>&1 | tee -a $OUT/train.log
    echo "eval $d: $((SECONDS - t0)) s wall" | tee -a $OUT/train.log
  done
  tail -2 $OUT/train.log ;;
resume)
  # Determinism and exact resume on the GPU: two identical runs, the second resumed from its step 40;
  # their step-60 weights must be the same bytes.
  W=/tmp/dev/devdata/wikitext-2
  f="--device cuda --data $W --d-model 256 --n-layers 4 --n-heads 8 --n-kv-heads 4 --d-ff 688 --seq-len 128 --batch-size 16 --steps 60 --ckpt-every 20 --eval-every 0 --eval-tokens 20000 --sample-tokens 0"
  run clm train $f --out /tmp/ra > $OUT/resume.log 2>&1 && run clm train $f --out /tmp/rb >> $OUT/resume.log 2>&1 &&
    run clm train --device cuda --resume /tmp/rb/step-00000040 --sample-tokens 0 >> $OUT/resume.log 2>&1
  tr '\r' '\n' < $OUT/resume.log | grep -E "resuming|perplexity|error" | tee -a $OUT/resume.txt
  cmp /tmp/ra/step-00000060/model.safetensors /tmp/rb/step-00000060/model.safetensors && echo "resume: step-60 weights identical" | tee -a $OUT/resume.txt
  cmp /tmp/ra/step-00000060/optimizer.safetensors /tmp/rb/step-00000060/optimizer.safetensors && echo "resume: step-60 optimizer state identical" | tee -a $OUT/resume.txt ;;
gemm)
  b run clm_bench_gemm_cuda ;;
decode)
  peak=$(nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200 && echo 4800 || echo 3350)
  shapes=("--dim 768 --layers 12 --heads 12 --kv-heads 4 --hidden 2048" "--dim 2048 --layers 16 --heads 32 --kv-heads 8 --hidden 8192")
  [ -n "${SHAPES:-}" ] && IFS=';' read -ra shapes <<< "$SHAPES"  # e.g. SHAPES="--dim 4096 --layers 32 ..."
  for r in $(seq ${ROUNDS:-1}); do
    for s in "${shapes[@]}"; do
      b run clm_bench_decode_cuda $s --peak-gbs $peak
      for q in ${QUANT:-}; do b run clm_bench_decode_cuda $s --peak-gbs $peak --quant $q; done
      [ "${PEER:-1}" = 1 ] && b python3 bench/hf_decode_cuda.py $s
    done
  done
  if [ -n "${COMPILE:-}" ]; then for s in "${shapes[@]}"; do b python3 bench/hf_decode_cuda.py $s --compile; done; fi
  M=/tmp/dev/devdata/stories260K
  if [ -d $M ]; then
    for d in cuda cpu; do
      run clm generate --device $d --model $M/stories260K.bin --tokenizer $M/tok512.bin --prompt "Once upon a time" \
        --temperature 0 --max-new-tokens 200 > $OUT/generate_$d.txt 2> $OUT/generate_$d.err
      tail -1 $OUT/generate_$d.err
    done
    cmp $OUT/generate_cuda.txt $OUT/generate_cpu.txt && echo "generate: --device cuda and cpu give the same 200 greedy tokens"
    W=/tmp/dev/devdata/wikitext-2
    if [ -d $W ]; then  # W8A8 (CrossQuant static, calibrated on the train split) scored on the GPU and on the CPU
      run clm calibrate --model $M/stories260K.bin --tokenizer $M/tok512.bin --data $W --windows 32 --out /tmp/cal.json > /dev/null 2>&1
      for d in ${EVAL_DEVICES:-cuda cpu}; do
        run clm eval --device $d --model $M/stories260K.bin --tokenizer $M/tok512.bin --data $W --split test --window 256 \
          --quant crossquant --quant-opt alpha=0.45 --calib /tmp/cal.json 2>&1 | grep -E "perplexity|quantized|error" | sed "s/^/eval $d: /"
        # NVFP4 W4A4: RTN, and ARCQuant where its KE fits the integer kernels
        for q in "rtn --quant-opt w=nvfp4 --quant-opt a=nvfp4" "arcquant --calib /tmp/cal.json"; do
          run clm eval --device $d --model $M/stories260K.bin --tokenizer $M/tok512.bin --data $W --split test --window 256 \
            --quant $q 2>&1 | grep -E "perplexity|quantized|error" | sed "s/^/eval $d ${q%% *}: /"
        done
      done
    fi
  fi ;;
quant)
  # NVFP4 W4A4 (RTN) and ARCQuant on the GPU: a CompactLM checkpoint packed as devdata/$QMODEL with its
  # calibration (calib.json) and a test text (test.txt), scored at windows of 64 and 128 tokens.
  Q=/tmp/dev/devdata/${QMODEL:-wt2m}
  for w in 64 128; do
    for q in f32 "rtn --quant-opt w=nvfp4 --quant-opt a=nvfp4" "arcquant --calib $Q/calib.json"; do
      [ "$q" = f32 ] && flags="" || flags="--quant $q"
      run clm eval --device cuda --model $Q --file $Q/test.txt --window $w $flags 2>&1 | grep -E "perplexity|quantized|error" |
        sed "s|^|window $w ${q%% *}: |" | tee -a $OUT/quant.txt
    done
  done ;;
outliers)
  # ARCQuant where activation outliers may be real: a ~100M Llama trained on WikiText-2 on the GPU (bf16
  # autocast; MODEL, TRAIN_STEPS override), a checkpoint kept every OUTLIER_EVERY steps, then each one
  # calibrated on the host CPU and scored through the GPU decoder (f32, RTN NVFP4 W4A4, ARCQuant) by
  # scripts/quant_outliers.sh on the first 250,000 bytes of the test split; scripts/quant_outliers.py's table.
  W=/tmp/dev/devdata/wikitext-2
  printf '#!/bin/sh\nexec /tmp/dev/devlib/ld-linux-x86-64.so.2 --library-path "%s" /tmp/dev/devlib/clm "$@"\n' "$LIBP" > /tmp/clmw
  chmod +x /tmp/clmw
  head -c 250000 $W/test.txt > /tmp/wt2_test_head.txt
  run clm train --device cuda --bf16 --data $W --out /tmp/run-q \
    ${MODEL:---d-model 768 --n-layers 12 --n-heads 12 --n-kv-heads 4 --d-ff 2048 --lr 6e-4} --tie-embeddings --seq-len 256 \
    --batch-size 32 --warmup 100 --steps ${TRAIN_STEPS:-1500} --eval-every ${OUTLIER_EVERY:-500} --keep-checkpoints 0 --sample-tokens 0 2>&1 |
    tr '\r' '\n' | grep -v '^step ' | tee $OUT/outliers_train.log | tail -4
  cp /tmp/run-q/metrics.jsonl $OUT/outliers_metrics.jsonl
  # OUTLIER_STEPS: the checkpoints to score, in this order (default: all, oldest first)
  CLM=/tmp/clmw EVAL_FLAGS="--device cuda" WINDOW=${OUTLIER_WINDOW:-128} scripts/quant_outliers.sh /tmp/run-q $W $OUT/outliers /tmp/wt2_test_head.txt ${OUTLIER_STEPS:-} 2>&1 |
    tee $OUT/outliers.txt
  python3 scripts/quant_outliers.py $OUT/outliers | tee -a $OUT/outliers.txt ;;
serve)
  M=/tmp/dev/devdata/stories260K
  for d in cuda cpu; do
    run clm serve --device $d --model $M/stories260K.bin --tokenizer $M/tok512.bin --port 18080 --slots 2 > $OUT/serve_$d.log 2>&1 &
    pid=$!
    for i in $(seq 60); do python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:18080/health')" 2>/dev/null && break; sleep 1; done
    python3 - $d > $OUT/serve_$d.json <<'PY'
import json, sys, urllib.request
req = {"prompt": "Once upon a time", "max_tokens": 60, "temperature": 0}
r = urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:18080/v1/completions", json.dumps(req).encode(), {"Content-Type": "application/json"}))
print(json.loads(r.read())["choices"][0]["text"])
PY
    kill $pid; wait $pid 2>/dev/null
    echo "serve $d: $(head -c 120 $OUT/serve_$d.json)"
  done
  cmp $OUT/serve_cuda.json $OUT/serve_cpu.json && echo "serve: --device cuda and cpu give the same 60-token completion" ;;
recurrent)
  # Issue #11 on the GPU (pack ../shared/data/ptb): TSLM under its code's SGD recipe (100 epochs) and
  # Zaremba et al.'s medium LSTM (39 epochs), trained side by side on one GPU for REC_S seconds each
  # (a run folder left by an earlier call on the same warm machine is resumed from its last checkpoint for
  # REC_S more seconds; REC_TRAIN=0 skips
  # training), then each run's PTB valid/test perplexity with the state carried through the whole
  # split, on the GPU and on the host CPU.
  # REC_CORPUS=wikitext-2 (packed beside or instead of ptb): the same two recipes on WikiText-2; their step
  # counts are PTB's epochs, so pass REC_STEPS_TSLM / REC_STEPS_LSTM for other corpora, and
  # REC_EVAL_TSLM / REC_EVAL_LSTM (steps between validations: one PTB epoch by default) with them.
  P=/tmp/dev/devdata/${REC_CORPUS:-ptb}; R=/tmp/rec-${REC_CORPUS:-ptb}
  rec() {
    local n=$1; shift
    local last; last=$(ls -d $R-$n/step-* 2>/dev/null | sort | tail -1)
    # --time-budget counts the run's whole training time (resumes included): REC_S more seconds than the checkpoint's
    local spent; spent=$(python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['elapsed_s']))" "$last/trainer_state.json" 2>/dev/null || echo 0)
    if [ -n "$last" ]; then run clm train --device cuda --resume "$last" --time-budget $((spent + ${REC_S:-420})) --sample-tokens 0
    else run clm train --device cuda --data $P "$@" --time-budget ${REC_S:-420} --sample-tokens 0 --out $R-$n; fi
  }
  if [ "${REC_TRAIN:-1}" = 1 ]; then
    rec tslm --arch tslm --d-model 512 --n-layers 2 --dropout 0.5 --seq-len 35 --batch-size 32 --optimizer sgd --lr 17.5 \
      --clip 0.143 --schedule step --decay-start 30 --decay-every 1 --lr-decay 0.5 --warmup 0 --init-std 0.0577 --steps ${REC_STEPS_TSLM:-83000} \
      --eval-every ${REC_EVAL_TSLM:-830} --ckpt-every $((5 * ${REC_EVAL_TSLM:-830})) > $R-tslm.log 2>&1 &
    rec lstm --arch lstm --d-model 650 --n-layers 2 --dropout 0.5 --seq-len 35 --batch-size 20 --optimizer sgd --lr 35 \
      --clip 0.143 --schedule step --decay-start 6 --decay-every 1 --lr-decay 0.8333333 --warmup 0 --init-std 0.0289 --steps ${REC_STEPS_LSTM:-51792} \
      --eval-every ${REC_EVAL_LSTM:-1328} --ckpt-every $((5 * ${REC_EVAL_LSTM:-1328})) > $R-lstm.log 2>&1 &
    wait
    for n in tslm lstm; do
      tr '\r' '\n' < $R-$n.log | grep -v '^step ' | sed "s/^/$n: /" | tee -a $OUT/rec.log | tail -6
      tr '\r' '\n' < $R-$n.log | grep '^step ' | tail -1 | sed "s/^/$n: /" | tee -a $OUT/rec.log
      cp $R-$n/metrics.jsonl $OUT/rec_${REC_CORPUS:-ptb}_$n.jsonl
    done
  fi
  for n in tslm lstm; do
    for d in ${EVAL_DEVICES:-cuda cpu}; do
      for split in valid test; do
        t0=$SECONDS
        run clm eval --device $d --model $R-$n --data $P --split $split --window 100000 --report $OUT/rec_eval.jsonl 2>&1 |
          tail -1 | sed "s/^/$n $d $split: /" | tee -a $OUT/rec.log
        echo "$n eval $d $split: $((SECONDS - t0)) s wall" | tee -a $OUT/rec.log
      done
    done
  done ;;
passkey)
  P=/tmp/pk; rm -rf /tmp/pk /tmp/pk-*
  # PK_SYNTH=F:K: the tool's synthetic corpus (F filler words, K key words) instead of PTB with plants
  python3 tools/make_passkey_corpus.py /tmp/dev/devdata/ptb $P --copies ${PK_COPIES:-24} --every ${PK_EVERY:-128} --span ${PK_SPAN:-2} --max-gap 240 \
    ${PK_SYNTH:+--synthetic $PK_SYNTH --words ${PK_WORDS:-20000000}} ${PK_REPEAT:+--repeat $PK_REPEAT}
  wc -w $P/*train* | tee $OUT/pk.log
  M="--d-model 256 --n-layers 4 --n-heads 4 --n-kv-heads 4 --d-ff 688 --tie-embeddings --lr ${PK_LR:-1e-3} --warmup 100 --seq-len 256 --batch-size 32"
  declare -A pos=([rope]="--position rope" [3drpe-c64]="--position 3d-rpe --position-opt chunk=64"
    [3drpe-c32]="--position 3d-rpe --position-opt chunk=32" [3drpe-c32-official]="--position 3d-rpe --position-opt chunk=32 phase=official"
    [alibi]="--position alibi")
  if [ -n "${PK_POS:-}" ]; then  # a subset, e.g. PK_POS="rope 3drpe-c32 alibi"
    for n in "${!pos[@]}"; do [[ " $PK_POS " == *" $n "* ]] || unset "pos[$n]"; done
  fi
  for n in "${!pos[@]}"; do
    run clm train --device cuda --data $P $M ${pos[$n]} --steps ${PK_STEPS:-3000} --time-budget ${PK_S:-330} --eval-every 0 \
      --sample-tokens 0 --out /tmp/pk-$n > /tmp/pk-$n.log 2>&1 &
  done
  wait
  for n in "${!pos[@]}"; do tr '\r' '\n' < /tmp/pk-$n.log | grep -v '^step ' | tail -3 | sed "s/^/$n: /" | tee -a $OUT/pk.log
    tr '\r' '\n' < /tmp/pk-$n.log | grep '^step .*tok/s' | tail -1 | sed "s/^/$n: /" | tee -a $OUT/pk.log
    cp /tmp/pk-$n/metrics.jsonl /tmp/pk-train-$n.jsonl; done
  tar -cJf $OUT/pk_train.tar.xz -C /tmp $(cd /tmp && ls pk-train-*.jsonl)
  ev() { local n=$1 w=$2; shift 2
    run clm eval --device cuda --model /tmp/pk-$n --data $P --split test --window $w --batch-size 8 --retrieval ${PK_TRIALS:-100} \
      "$@" --report $OUT/pk_eval.jsonl 2>&1 | grep -E "perplexity|retrieval" | sed "s/^/$n $w $*: /" >> $OUT/pk.log; }
  # one chain of evaluations per model and evaluation-time scaling, all at once on the GPU
  for n in "${!pos[@]}"; do
    ( for w in 256 512 1024 2048; do ev $n $w; done ) &
    case $n in
      rope) for sc in pi ntk yarn; do ( for w in 512 1024 2048; do ev $n $w --position-opt scaling=$sc scale=$((w / 256)); done ) & done ;;
      3drpe-c32) ( for w in 512 1024 2048; do ev $n $w --position-opt scale=$((w / 256)); done ) & ;;
    esac
  done
  wait; cat $OUT/pk.log ;;
copyprobe)
  IFS=';' read -r -a specs <<< "${CP_RUNS:?CP_RUNS=\"name=corpus flags;...\"}"
  M="--d-model 256 --n-layers 4 --n-heads 4 --n-kv-heads 4 --d-ff 688 --tie-embeddings --lr ${PK_LR:-1e-3} --warmup 100 --seq-len 256 --batch-size 32"
  names=()
  for spec in "${specs[@]}"; do
    n=${spec%%=*}; n=${n// /}
    [[ $n =~ ^[A-Za-z0-9_-]+$ ]] || { echo "copyprobe: run name '$n': letters, digits, _ and - only" >&2; exit 1; }
    names+=("$n"); rm -rf "/tmp/cp-$n" "/tmp/cpd-$n"
    # shellcheck disable=SC2086  # the corpus flags split on spaces
    case ${spec#*=} in
      recall*) f=${spec#*=}; python3 tools/make_recall_corpus.py /tmp/cpd-$n ${f#recall} ;;  # "recall --keys 128 ..."
      *) python3 tools/make_passkey_corpus.py /tmp/dev/devdata/ptb /tmp/cpd-$n ${spec#*=} ;;
    esac
    echo "$n: ${spec#*=} | $(cat /tmp/cpd-$n/*train* | wc -w) train words" | tee -a $OUT/cp.log
  done
  for n in "${names[@]}"; do
    run clm train --device cuda --data /tmp/cpd-$n $M --steps ${PK_STEPS:-100000} --time-budget ${CP_S:-300} --eval-every 0 \
      --sample-tokens 0 --out /tmp/cp-$n > /tmp/cp-$n.log 2>&1 &
  done
  wait
  for n in "${names[@]}"; do
    tr '\r' '\n' < /tmp/cp-$n.log | grep '^step .*tok/s' | tail -1 | sed "s/^/$n: /" | tee -a $OUT/cp.log
    cp /tmp/cp-$n/metrics.jsonl $OUT/cp_train_$n.jsonl
    for w in 256 512; do
      run clm eval --device cuda --model /tmp/cp-$n --data /tmp/cpd-$n --split test --window $w --batch-size 8 --retrieval ${CP_TRIALS:-200} \
        --report $OUT/cp_eval.jsonl 2>&1 | grep -E "perplexity|retrieval" | sed "s/^/$n $w: /" | tee -a $OUT/cp.log
    done
  done ;;
longctx)
  # Issue #12's long-context model: WikiText-2 on 2048-token windows (the shape of bench_kv: d_model 256,
  # 4 layers, 4 heads), for kv-bench's long-document and long-generation tasks on the host CPU. Its
  # weights come back in parts of 15 MiB: cat longctx.tar.part* | tar -x.
  W=/tmp/dev/devdata/wikitext-2
  run clm train --device cuda --data $W --d-model 256 --n-layers 4 --n-heads 4 --n-kv-heads 4 --d-ff 688 --tie-embeddings \
    --dropout ${LC_DROPOUT:-0.1} --seq-len ${LC_SEQ:-2048} --max-seq-len ${LC_SEQ:-2048} --batch-size ${LC_BATCH:-8} --lr 2e-3 --warmup 100 \
    --steps ${LC_STEPS:-3000} --time-budget ${LC_S:-360} --eval-every 500 --sample-tokens 0 --out /tmp/lc 2>&1 |
    tr '\r' '\n' | grep -v '^step ' | tee $OUT/longctx.log | tail -12
  ck=$(ls -d /tmp/lc/step-* | tail -1)
  for w in 512 ${LC_SEQ:-2048}; do
    run clm eval --device cuda --model $ck --data $W --split test --window $w --batch-size 8 --report $OUT/longctx_eval.jsonl 2>&1 | tee -a $OUT/longctx.log
  done
  cp /tmp/lc/metrics.jsonl $OUT/longctx_metrics.jsonl
  mkdir -p /tmp/lcm/wt2-${LC_SEQ:-2048} && cp $ck/config.json $ck/model.safetensors $ck/tokenizer.json /tmp/lcm/wt2-${LC_SEQ:-2048}/
  tar -cf - -C /tmp/lcm wt2-${LC_SEQ:-2048} | split -b 15M - $OUT/longctx.tar.part ;;
dp)
  # Data parallel on the two-GPU machine: (1) two GPUs with batch 8 each follow one GPU with batch
  # 16 step for step; (2) throughput of one and of two GPUs at batch 32 each (101M model, bf16).
  W=/tmp/dev/devdata/wikitext-2
  f="--device cuda --data $W --d-model 256 --n-layers 4 --n-heads 8 --n-kv-heads 4 --d-ff 688 --seq-len 128 --steps 30 --log-every 1 --eval-every 0 --eval-tokens 20000 --sample-tokens 0"
  rundp clm train $f --batch-size 16 --out /tmp/dp1 > $OUT/dp.log 2>&1
  rundp clm train $f --batch-size 8 --gpus 2 --out /tmp/dp2 >> $OUT/dp.log 2>&1
  cp /tmp/dp1/metrics.jsonl $OUT/dp_equiv_1gpu.jsonl; cp /tmp/dp2/metrics.jsonl $OUT/dp_equiv_2gpu.jsonl
  python3 - $OUT <<'PY'
import json, sys
o = sys.argv[1]
a = [json.loads(l) for l in open(o + "/dp_equiv_1gpu.jsonl") if '"loss"' in l]
b = [json.loads(l) for l in open(o + "/dp_equiv_2gpu.jsonl") if '"loss"' in l]
d = max(abs(x["loss"] - y["loss"]) / x["loss"] for x, y in zip(a, b))
print(f"dp: {len(a)} steps, losses 1 GPU {a[0]['loss']:.5f} .. {a[-1]['loss']:.5f}, 2 GPUs {b[0]['loss']:.5f} .. {b[-1]['loss']:.5f}, max relative difference {d:.2e}")
PY
  big="--device cuda --bf16 --data $W --d-model 768 --n-layers 12 --n-heads 12 --n-kv-heads 4 --d-ff 2048 --tie-embeddings --seq-len 256 --batch-size 32 --steps 200 --log-every 20 --eval-every 0 --eval-tokens 8192 --sample-tokens 0"
  for g in 1 2; do
    rundp clm train $big --gpus $g --out /tmp/dps$g >> $OUT/dp.log 2>&1
    cp /tmp/dps$g/metrics.jsonl $OUT/dp_speed_${g}gpu.jsonl
    python3 -c "import json,sys; r=[json.loads(l) for l in open('$OUT/dp_speed_${g}gpu.jsonl') if 'tokens_per_s' in l]; print('dp speed: $g GPU(s)', [round(x['tokens_per_s']) for x in r])"
  done
  tail -3 $OUT/dp.log ;;
esac
done
