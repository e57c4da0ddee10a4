# Two commands on a fresh machine:  `make course`  and  `make test`.
PYTHON     ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.minigpt2-installed
# The CPU build where there is no GPU; override for CUDA, e.g. make course TORCH_SPEC="torch==2.13.0"
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?= -rs --durations=25

.PHONY: setup course test exercises translate messages clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[test,browser]"
	@touch $(STAMP)

# JupyterLab refuses to start as root (containers often run as root) unless told it may.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

# The repository root is JupyterLab's root, so exercises/ and solutions/ are a click away; lesson 00 opens first.
# The committed notebooks are trusted first: JupyterLab shows a notebook's saved widgets only when it is trusted.
# `MINIGPT2_LANG=zh make course`: the Chinese course (notebooks/zh/…), whose checks then speak Chinese too.
COURSE_START := $(if $(filter zh%,$(MINIGPT2_LANG)),notebooks/zh/00_welcome.ipynb,notebooks/00_welcome.ipynb)

course: setup
	$(VENV)/bin/jupyter trust notebooks/*.ipynb exercises/*.ipynb solutions/*.ipynb \
		notebooks/zh/*.ipynb exercises/zh/*.ipynb solutions/zh/*.ipynb
	$(VENV)/bin/jupyter lab $(ALLOW_ROOT) --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/$(COURSE_START)

test: setup
	$(VENV)/bin/ruff check
	MINIGPT2_QUICK=1 $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

exercises: setup
	$(VENV)/bin/minigpt2 exercises

# notebooks/zh/, solutions/zh/, exercises/zh/ from the English notebooks and translations/zh/ (a test fails when stale).
translate: setup
	$(VENV)/bin/minigpt2 translate

# Re-extract the package's messages (minigpt2/locale/minigpt2.pot) and merge them into each catalog.
messages: setup
	$(PY) -m minigpt2.i18n.messages update

clean:
	rm -rf $(VENV) .pytest_cache
