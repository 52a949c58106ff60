# Two commands a newcomer needs: `make run` and `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= config.yaml
# Debian packages the gateway runs (fax OCR; Kamailio in front of several SIP workers; its
# WebSocket module and rtpengine for calls from browsers); installed when missing.
DEBIAN_PACKAGES ?= tesseract-ocr tesseract-ocr-chi-sim poppler-utils kamailio kamailio-sqlite-modules kamailio-postgres-modules kamailio-websocket-modules rtpengine-daemon
# Only the tests draw Chinese fax pages, speak voicemails (espeak-ng, sox), drive a browser
# and place calls with SIPp.
DEBIAN_TEST_PACKAGES ?= fonts-wqy-zenhei espeak-ng sox chromium sip-tester

# Test processes: the tests mostly wait on calls, modems and servers, so four share two
# cores well (the parallel part 11 min here, the serial part 6); a module's tests stay on one (loadfile). The
# tests that compare a call's audio frame by frame run after, alone: a CPU-starved worker's
# jitter buffer throws frames away, which is the machine's doing, not the gateway's. So do
# the load tests (marker alone): beside three other processes' calls, the 30 callers of
# test_queue_load once outlasted SIPp's 90 s, which says nothing about the queue.
TEST_PROCESSES ?= 4

.PHONY: run test install install-dev debian-packages prompts jssip lint clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Installs what is missing, as root or through sudo. For `make run` it is best effort
# (OPTIONAL=1): without them the gateway still runs and OCR jobs wait; `make test` needs them.
debian-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES) $(EXTRA_DEBIAN); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then as=""; elif command -v sudo >/dev/null; then as="sudo"; \
	  elif [ -n "$(OPTIONAL)" ]; then echo "note: cannot install$$missing (not root, no sudo)"; exit 0; \
	  else echo "cannot install$$missing: run as root or install sudo" >&2; exit 1; fi; \
	  echo "installing Debian packages:$$missing"; \
	  $$as apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$as apt-get install -y -qq $$missing \
	    || [ -n "$(OPTIONAL)" ]; \
	fi

# The shipped IVR recordings (ivr/prompts/) from the default texts of ivr/menu.py, with
# espeak-ng and sox: only what changed is rebuilt. tests/ivr/test_prompts.py fails until it is.
prompts: install
	$(MAKE) debian-packages DEBIAN_PACKAGES="espeak-ng sox"
	$(PY) -c 'import sys; from ivr.menu import IvrConfig; from ivr.prompts import SHIPPED, prompts_command; sys.exit(prompts_command(IvrConfig(), SHIPPED))'

# The page's SIP library (网上呼叫): JsSIP from npm, bundled into one file with esbuild and
# kept in the tree with its licences; run again only to take another version.
jssip:
	cd channels/web/jssip && npm ci --no-audit --no-fund && \
	  node_modules/.bin/esbuild entry.js --bundle --minify --format=iife --target=es2019 \
	    --outfile=../static/vendor/jssip-$$(node -p 'require("./node_modules/jssip/package.json").version').min.js

run: install
	$(MAKE) debian-packages OPTIONAL=1
	$(VENV)/bin/hotline --config $(CONFIG) db upgrade
	$(VENV)/bin/hotline --config $(CONFIG) serve

test: install-dev
	$(MAKE) debian-packages EXTRA_DEBIAN="$(DEBIAN_TEST_PACKAGES)"
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n $(TEST_PROCESSES) --dist loadfile -m "not realtime and not alone" $(PYTEST_ARGS)
	$(PY) -m pytest -q -m "realtime or alone" $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
