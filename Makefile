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
	$(PY) -m pip install --quiet -e '.[test,dev,bench,dist]'
	@touch $@

system-deps-test:
	@bash packaging/system-deps.sh test

system-deps-demo:
	@bash packaging/system-deps.sh demo

## make demo: the sipsec demo on the embedded demo network (two domains, two proxies, alice and
## bob on loopback): the GUI demo where there is a display and the GUI demo exists, else
## `softphone demo --headless` (ladders and "what each proxy saw"; exits 1 if a proxy could read
## the sipsec call). docs/demo.md says what to look at.
demo: $(STAMP) system-deps-demo
	@if { [ -n "$$DISPLAY" ] || [ -n "$$WAYLAND_DISPLAY" ]; } && $(PY) -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("ui.demo") is None)' 2>/dev/null; \
	then $(VENV)/bin/softphone demo --gui; \
	else $(VENV)/bin/softphone demo --headless; fi

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

## make dist: the one-folder app dist/softphone/softphone (PyInstaller, packaging/softphone.spec)
## that runs without a venv; the .desktop file, metainfo and icons are in packaging/ and resources/
dist: $(STAMP) system-deps-test
	$(VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN \
	  --distpath dist --workpath build/pyinstaller packaging/softphone.spec
	@echo "built dist/softphone/softphone; try: dist/softphone/softphone doctor"

clean:
	rm -rf $(VENV) .test-artifacts build dist *.egg-info .mypy_cache .ruff_cache .hypothesis
