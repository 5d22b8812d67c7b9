# The two commands a person needs: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
# A CPU build of 2.13.0 is what offline machines here have; override for a CUDA build, e.g. TORCH=torch.
TORCH  ?= torch==2.13.0
RUN    ?= runs/demo
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo ml-1m seeds-ml-100k seeds-ml-1m test test-fast lint bench bench-ml-1m clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sidrec demo --run $(RUN)

# MovieLens-1M, the field's standard benchmark: the whole pipeline with the ml-1m preset, report in
# runs/ml-1m/report.md. Under 30 minutes on 2 CPU cores (12 epochs per learned model), minutes on a GPU
# (ARGS="--accelerator gpu"); extra `sidrec run` flags go in ARGS="...", e.g. ARGS="--set max_epochs=24 --set lr=0.002".
ml-1m: $(STAMP)
	$(BIN)/sidrec run --preset ml-1m --run runs/ml-1m $(ARGS)

# The headline tables: one complete run per seed (RQ-VAE included), then mean ± sd and paired tests in
# runs/<name>/metrics.json and report.md. ML-100K over 5 seeds, ML-1M over 3.
seeds-ml-100k: $(STAMP)
	$(BIN)/sidrec run --preset ml-100k --run runs/ml-100k-seeds --seeds 1 2 3 4 5 $(ARGS)

seeds-ml-1m: $(STAMP)
	$(BIN)/sidrec run --preset ml-1m --run runs/ml-1m-seeds --seeds 1 2 3 $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

# The suite without the tests marked slow (pipelines, trainings, encoders): a quick check while editing.
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

# Speed and memory on ML-100K; needs a finished `make demo` (runs/demo). Results go to bench/results/.
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/bench_sids.py --dataset ml-100k --run $(RUN)
	$(BIN)/python bench/bench_recsys.py --dataset ml-100k --run $(RUN)
	$(BIN)/python bench/rqvae_ablation.py --run $(RUN)
	$(BIN)/python bench/report.py

# Windows vs sampled prefixes on ML-1M (needs runs/ml-1m), and the stage timings of `make ml-1m`.
bench-ml-1m: $(STAMP)
	$(BIN)/python bench/sampling.py --dataset ml-1m --run runs/ml-1m --preset ml-1m
	$(BIN)/python bench/pipeline_timings.py runs/ml-1m
	$(BIN)/python bench/report.py

clean-venv:
	rm -rf $(VENV)
