# One command each: `make setup`, `make course`, `make test`.
# Everything runs inside the project's own virtual environment, .venv/.
# Its bin/ goes first on PATH because nbgrader shells out to `alembic`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup weights course test fidelity lfw bench

setup:  ## create .venv, install pinned dependencies and fr_utils, build the weights
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(MAKE) weights

weights:  ## (re)build weights/ from the pinned source artifact
	$(BIN)/python -m fr_utils.weights build

course:  ## open the course in JupyterLab
	$(BIN)/jupyter lab notebooks/

test:  ## run the test suite
	$(BIN)/python -m pytest

fidelity:  ## max |Keras - frozen graph| over real faces
	$(BIN)/python -m fr_utils.fidelity

lfw:  ## LFW accuracy, standard protocol, Sandberg's options (needs FR_DATASETS; about 20 min the first time, seconds once cached)
	$(BIN)/python -m fr_utils.evaluate lfw --published

bench:  ## speed and memory: encoder vs frozen graph, detection by photo size, whole course, autograding
	$(BIN)/python benchmarks/encoder_throughput.py
	$(BIN)/python benchmarks/detection_by_size.py
	$(BIN)/python benchmarks/notebooks_seconds.py
	$(BIN)/python benchmarks/autograde_seconds.py --students 10
