# The two set-up commands in the README: `make demo` and `make test`.
# Both create .venv, install iceaudit into it, then run the job.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: install demo test bench acceptance demo-world clean

install: $(VENV)/.installed

# torch is installed first, pinned, only where none is importable: an open
# `torch>=2.3` requirement on a machine without torch would pull a multi-GB
# CUDA build. Users who already have a torch (CUDA or not) keep theirs.
$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: install
	$(VENV)/bin/iceaudit demo

test: install
	$(PY) -m pytest -q

# The issue-21 acceptance run at real size (config-f 1024 pickle, FFHQ recipe with FAN and
# BiSeNet, ResNet-50 in ONNX and TorchScript, audit N = 8, report), random weights, on CPU.
acceptance: install
	PYTHONPATH=. $(PY) benchmarks/acceptance_f1024.py --work runs/acceptance

# Rebuild the shipped FaceLab demo generator (trained, then given its style knobs), its
# estimators and factor reader, and the bank (about 50 + 45 + 7 + 16 + 9 min on 2 CPU cores;
# BENCHMARKS.md). Checkpoints, render cache and JᵀJ caches go to runs/.
demo-world: install
	$(VENV)/bin/iceaudit facelab train-generator --precision bf16 --workdir runs/demo-generator \
	    --out runs/demo-generator/demo_generator
	$(VENV)/bin/iceaudit facelab train-knobs --generator runs/demo-generator/demo_generator.safetensors \
	    --workdir runs/demo-generator --out iceaudit/facelab/assets/demo_generator
	$(VENV)/bin/iceaudit facelab train-estimator age --out iceaudit/facelab/assets
	$(VENV)/bin/iceaudit facelab train-estimator beard --out iceaudit/facelab/assets
	$(VENV)/bin/iceaudit facelab train-reader --out iceaudit/facelab/assets
	$(VENV)/bin/iceaudit bank build --generator demo --recipe facelab --landmarks facelab --parser facelab \
	    --truth facelab --out subspace_bank/demo --cache runs/jtj-cache

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache
