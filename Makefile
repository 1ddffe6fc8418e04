# Two set-up commands for a newcomer: `make demo` and `make test` (see README).
VENV   ?= .venv
PY     := $(VENV)/bin/python
# pip takes these two from local disk on the project machines; elsewhere `make test TORCH=torch`.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
DEMO   ?= demo

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/maskcls make-demo $(DEMO)
	$(VENV)/bin/maskcls eda --data $(DEMO)

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(DEMO) runs .pytest_cache
