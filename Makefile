# Two commands: `make course` and `make test`. Each first sets up what is missing
# (the Debian packages of system-packages.txt when root, .venv/ with the pinned
# dependencies and fr_utils, the weights), then runs. Sentinel files make a second
# run fast: .venv/.deps (requirements.txt, pyproject.toml), .venv/.system-packages
# (system-packages.txt), weights/<model>.manifest.json.
# Everything runs inside the project's own virtual environment, .venv/; its bin/
# goes first on PATH because nbgrader shells out to `alembic`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
# The weights live in the repository's weights/ (fr_utils also searches a per-user and
# a system-wide folder: python -m fr_utils.weights where).
export FR_WEIGHTS_DIR := $(CURDIR)/weights
# One manifest per encoder: the default 128-number 20170512-110547 and the 512-number
# 20180408-102900, which tests and comparisons select by name
# (python -m fr_utils.weights build --model NAME; docs/weights.md).
WEIGHTS_OK := weights/facenet_20170512-110547.manifest.json weights/facenet_20180408-102900.manifest.json
# Extra arguments for JupyterLab, e.g. LAB_ARGS="--no-browser --port 8899"; for pytest, PYTEST_ARGS.
LAB_ARGS ?=
PYTEST_ARGS ?=
# Test files run in this many processes (pytest-xdist; each file stays in one process,
# so a module's fixtures are built once). 0: one process, no xdist.
PYTEST_WORKERS ?= 2

.PHONY: setup weights course test fidelity lfw bench hub-deps system-packages

setup: $(VENV)/.system-packages $(VENV)/.deps $(WEIGHTS_OK) hub-deps  ## everything course and test need

$(VENV)/.system-packages: system-packages.txt
	@mkdir -p $(VENV)
	@wanted="$$(grep -v '^\s*#' system-packages.txt | xargs)"; \
	missing="$$(for p in $$wanted; do dpkg -s "$$p" >/dev/null 2>&1 || echo "$$p"; done | xargs)"; \
	if [ -z "$$missing" ]; then echo "Debian packages present: $$wanted"; touch $@; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing && touch $@; \
	else echo "WARNING: Debian packages missing (not root or no apt-get: install them yourself): $$missing"; fi

$(VENV)/.deps: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

weights/%.manifest.json: | $(VENV)/.deps
	$(BIN)/python -m fr_utils.weights build --model $*

weights: $(VENV)/.deps  ## (re)build weights/ from the pinned source artifact (skips up-to-date weights)
	$(BIN)/python -m fr_utils.weights build --model all

course: setup  ## JupyterLab at the repository root: notebooks/, and the Formgrader's release/, submitted/, ...
	@if [ "$$(id -u)" = 0 ]; then echo "running as root: starting JupyterLab with --allow-root"; fi
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) $(LAB_ARGS)

test: setup  ## the test suite
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

fidelity: setup  ## max |Keras - reference| over real faces, for each encoder
	$(BIN)/python -m fr_utils.build.fidelity --model facenet_20170512-110547
	$(BIN)/python -m fr_utils.build.fidelity --model facenet_20180408-102900

lfw: setup  ## LFW accuracy, standard protocol, Sandberg's options (needs FR_DATASETS; about 20 min the first time, seconds once cached)
	$(BIN)/python -m fr_utils.evaluate lfw --published

bench: setup  ## speed and memory: encoder vs frozen graph, detection by photo size, whole course, autograding
	$(BIN)/python benchmarks/encoder_throughput.py
	$(BIN)/python benchmarks/detection_by_size.py
	$(BIN)/python benchmarks/notebooks_seconds.py
	$(BIN)/python benchmarks/autograde_seconds.py --students 10

# --- The classroom on JupyterHub (deploy/jupyterhub/; docs/classroom.md, "JupyterHub") ---
HUB := deploy/jupyterhub
.PHONY: classroom

hub-deps: $(HUB)/node_modules/.package-lock.json  ## configurable-http-proxy (npm), JupyterHub's proxy

$(HUB)/node_modules/.package-lock.json: $(HUB)/package.json $(HUB)/package-lock.json
	cd $(HUB) && npm ci --no-audit --no-fund --loglevel=error

classroom: setup  ## a demo class on JupyterHub, http://127.0.0.1:8000 (as root: it creates the users)
	$(BIN)/python $(HUB)/classroom.py run
