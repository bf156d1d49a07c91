# Softphone: the two commands a newcomer needs are `make demo` and `make test`.
# Every target bootstraps what it needs: a local .venv with the Python packages and, when run as
# root on Debian, the system packages (packaging/system-deps.sh says which, and why).

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test bench lint gui dist clean system-deps-test system-deps-demo

$(STAMP): pyproject.toml
	@test -x $(PY) || { $(PYTHON) -m venv $(VENV) || { \
	  echo "error: '$(PYTHON) -m venv' failed; on Debian: apt-get install python3-venv python3-pip" >&2; exit 1; }; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev,bench]'
	@touch $@

system-deps-test:
	@bash packaging/system-deps.sh test

system-deps-demo:
	@bash packaging/system-deps.sh demo

## make demo: the sipsec demo. Today the terminal preview; the GUI demo with the embedded demo
## network (opened where there is a display) arrives with the sipsec and GUI issues.
demo: $(STAMP) system-deps-demo
	$(VENV)/bin/softphone demo --terminal

## make test: the whole suite (unit, property, interop against real peers), with branch coverage
test: $(STAMP) system-deps-test
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider \
	  --cov=softphone --cov-branch --cov-report=term:skip-covered --cov-report=xml:.test-artifacts/coverage.xml
	@$(PY) -m coverage report --include='softphone/sip/*' --precision=1 | tail -n 1 | \
	  sed 's/^TOTAL/Branch coverage of softphone\/sip (statements+branches):/'

## make bench: speed, as ratios against a peer implementation where one exists
bench: $(STAMP)
	$(PY) benchmarks/run.py

## make lint: ruff and mypy --strict on the engine
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict softphone

gui: $(STAMP) system-deps-demo
	$(VENV)/bin/softphone gui

clean:
	rm -rf $(VENV) .test-artifacts build dist *.egg-info .mypy_cache .ruff_cache .hypothesis
