#!/usr/bin/env bash
# Many `sidrec run` jobs at once on one GPU machine that has no network and no project install (the device
# tool's machines), then their small result files in one archive.
#   bash bench/gpu_batch.sh JOBFILE [SECONDS]
# JOBFILE: one job a line (`#` lines ignored), in priority order: `NAME run ARGS...` runs `sidrec run ARGS` on
# the GPU, `NAME SCRIPT ARGS...` a Python script; `NAME after=FILE ...` first waits for FILE. The first
# call starts a scheduler in its own session (it outlives the call) that keeps MAX_JOBS jobs running, each a
# process with one CPU thread; every call then waits up to SECONDS (default 540) for the jobs to end and packs
# metrics, per-user figures, timings, SID quality, training curves and logs of every run so far into
# $OUT/results.tgz. Call it again on the same (warm) machine to collect what finished later.
# Needs, as bench/gpu_ml1m.sh: faiss-cpu as a wheel in .whl/, the MovieLens wheels in data/raw/, the
# embedding caches in data/cache/embeddings/. ACCEL=cpu runs the same on a machine without a GPU (a test).
set -uo pipefail
jobs_file=$1; wait_s=${2:-540}
state=/tmp/gpu-batch; out=${OUT:-/tmp/gpu-batch-out}; mkdir -p "$out"
export PYTHONPATH=/tmp/site:$PWD SIDREC_OFFLINE=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 \
  MKL_NUM_THREADS=1 ACCEL=${ACCEL:-gpu} MAX_JOBS=${MAX_JOBS:-14} state

if [ ! -e "$state/started" ]; then
  mkdir -p "$state/logs" "$state/rc"
  if ! python3 -c "import faiss" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  fi
  if [ "$ACCEL" = gpu ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$state/gpu.txt"
    # MPS lets the processes' small kernels share the GPU instead of taking turns; without it they still run
    if nvidia-cuda-mps-control -d 2>/dev/null && timeout 60 python3 -c "import torch; torch.ones(1, device='cuda').sum().item()"
    then echo "MPS on" >> "$state/gpu.txt"
    else echo quit | nvidia-cuda-mps-control 2>/dev/null; echo "MPS off" >> "$state/gpu.txt"; fi
  fi
  python3 -c "import torch, lightning, faiss; print(torch.__version__, lightning.__version__, faiss.__version__, \
torch.cuda.is_available())" >> "$state/gpu.txt" 2>&1
  cp "$jobs_file" "$state/jobs.txt"
  touch "$state/started"
  # the scheduler: start jobs in order while fewer than MAX_JOBS run; each writes its exit status to rc/NAME
  setsid nohup bash -c '
    while read -r name args; do
      while [ "$(jobs -rp | wc -l)" -ge "$MAX_JOBS" ]; do sleep 2; done
      ( eval "set -- $args"
        if [ "${1%%=*}" = after ]; then until [ -e "${1#after=}" ]; do sleep 5; done; shift; fi
        if [ "$1" = run ]; then shift
          python3 -m recsys.app.cli run "$@" --accelerator "$ACCEL" --devices 1 --set progress=false
        else python3 "$@"; fi > "$state/logs/$name.log" 2>&1
        echo $? > "$state/rc/$name" ) &
      sleep 1
    done < <(grep -v -e "^#" -e "^\s*$" "$state/jobs.txt")
    wait; touch "$state/all-done"' > "$state/scheduler.log" 2>&1 &
fi

begin=$SECONDS
while [ ! -e "$state/all-done" ] && [ $((SECONDS - begin)) -lt "$wait_s" ]; do
  sleep 20
  echo "$((SECONDS - begin)) s: $(ls "$state/rc" | wc -l) of $(grep -c -v -e '^#' -e '^\s*$' "$state/jobs.txt") jobs ended;" \
       "failed: $(grep -L '^0$' "$state"/rc/* 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ')"
done
cp "$state/gpu.txt" "$state/jobs.txt" "$state/scheduler.log" "$state/logs/" 2>/dev/null
for f in "$state"/rc/*; do [ -e "$f" ] && echo "$(basename "$f") $(cat "$f")"; done > "$state/logs/rc.txt"
for f in "$state"/logs/*.log; do tail -c 20000 "$f" > "$f.tail"; done
find runs \( -name metrics.json -o -name per_user.parquet -o -name timings.json -o -name sid_quality.json \
  -o -path '*/logs/metrics.csv' -o -name report.md -o -name level_gap.json -o -name sids.parquet \
  -o -name movies.parquet \) \
  > "$state/files.txt"
tar czf "$out/results.tgz" -T "$state/files.txt" -C "$state" logs/rc.txt gpu.txt jobs.txt scheduler.log \
  $(cd "$state" && ls logs/*.tail 2>/dev/null)
# figures and the models of the run MODELS_OF, if set (for analyses elsewhere), apart, so that a large archive costs only itself
find runs -name '*.png' > "$state/extras.txt"
[ -n "${MODELS_OF:-}" ] && find "$MODELS_OF"/models/{sid-generative,faiss-dense} "$MODELS_OF/quantizer" -type f >> "$state/extras.txt"
tar czf "$out/extras.tgz" -T "$state/extras.txt"
ls -la "$out"
