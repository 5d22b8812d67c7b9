#!/usr/bin/env bash
# `make ml-1m` on a GPU machine that has no network and no project install (the device tool's machines):
# runs from the source tree with the machine's own torch/lightning, faiss-cpu carried as a wheel in .whl/,
# the ML-1M wheel in data/raw/ and the ML-1M embedding cache in data/cache/embeddings/ml-1m/.
#   bash bench/gpu_ml1m.sh [extra `sidrec run` arguments]
# Results (report, metrics, timings, bench JSON, log) are copied to $OUT when it is set.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD SIDREC_OFFLINE=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
out=${OUT:-/tmp/gpu-out}; mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, lightning, faiss, pandas; print(torch.__version__, lightning.__version__, faiss.__version__, pandas.__version__, torch.cuda.is_available())"
set +e
python3 -m recsys.app.cli run --preset ml-1m --run runs/ml-1m-gpu --accelerator gpu --devices 1 "$@" 2>&1 \
  | grep -v -E "Epoch [0-9]+/|LeafSpec|litlogger" | tee "$out/log.txt"
status=${PIPESTATUS[0]}
set -e
cp runs/ml-1m-gpu/{metrics.json,timings.json,report.md,sid_quality.json} "$out/" 2>/dev/null || true
if [ "$status" -eq 0 ]; then (cd bench && python3 pipeline_timings.py ../runs/ml-1m-gpu) && cp bench/results/pipeline-ml-1m-gpu.json "$out/"; fi
exit "$status"
