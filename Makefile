# Two commands a newcomer needs: `make run` and `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= config.yaml
# Debian packages the gateway runs (fax OCR); installed when missing.
DEBIAN_PACKAGES ?= tesseract-ocr tesseract-ocr-chi-sim poppler-utils
# Only the tests draw Chinese fax pages and speak voicemails (espeak-ng, sox).
DEBIAN_TEST_PACKAGES ?= fonts-wqy-zenhei espeak-ng sox

.PHONY: run test install install-dev debian-packages lint clean

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

debian-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES) $(EXTRA_DEBIAN); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

run: install debian-packages
	$(VENV)/bin/hotline --config $(CONFIG) db upgrade
	$(VENV)/bin/hotline --config $(CONFIG) serve

test: install-dev
	$(MAKE) debian-packages EXTRA_DEBIAN="$(DEBIAN_TEST_PACKAGES)"
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
