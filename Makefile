# The two commands: `make demo` (set up, fetch sample media + default models, run the sample shot) and
# `make test` (set up, run the tests). Everything else here supports those two.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
OUT    ?= out

.PHONY: demo test install bench clean

install: $(STAMP)

# CPU torch unless an NVIDIA GPU is present: never pull CUDA wheels onto a machine without a GPU.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip wheel
	$(PY) -c "import torch" 2>/dev/null || { \
	  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	    $(PY) -m pip install -q --disable-pip-version-check torch; \
	  else \
	    $(PY) -m pip install -q --disable-pip-version-check torch==2.13.0; \
	  fi; }
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) samples/fetch_media.py --link $(OUT)/media pexels_clip astronaut
	$(VENV)/bin/vidswap models fetch --defaults
	mkdir -p $(OUT)
	$(VENV)/bin/vidswap run --config samples/shot.yaml --contact-sheet $(OUT)/pexels_contact_sheet.png
	@echo "demo output: $$(cd $(OUT) && pwd)/pexels_swapped.mp4"

test: $(STAMP)
	$(VENV)/bin/vidswap models fetch --defaults
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(VENV)/bin/vidswap models fetch --defaults
	$(PY) benchmarks/io_bench.py
	$(PY) benchmarks/bench_analysis.py
	$(PY) benchmarks/bench_render.py
	$(PY) benchmarks/bench_tune.py
	$(PY) benchmarks/bench_pipeline.py

clean:
	rm -rf $(OUT) .pytest_cache
