# The two commands a person needs: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
# A CPU build of 2.13.0 is what offline machines here have; override for a CUDA build, e.g. TORCH=torch.
TORCH  ?= torch==2.13.0
RUN    ?= runs/demo
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sidrec demo --run $(RUN)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
