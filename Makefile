# Two commands set everything up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint conformance bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# A second broker beside the first needs its own ports and its own data directory
# (one broker per data directory):
#   make serve PORT=5673 MANAGEMENT_PORT=15673 PROMETHEUS_PORT=15693 DATA=./data2
PORT ?= 5672
MANAGEMENT_PORT ?= 15672
PROMETHEUS_PORT ?= 15692
DATA ?= ./data

serve: $(STAMP)
	$(BIN)/warren serve --host 127.0.0.1 --port $(PORT) --management-port $(MANAGEMENT_PORT) \
		--prometheus-port $(PROMETHEUS_PORT) --data-dir $(DATA)

# tests/cluster runs real etcd members: tools/ensure-etcd installs Debian's
# etcd-server when it is missing and we may (root, apt-get), else says how.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	tools/ensure-etcd
	$(BIN)/python -m pytest -q

# make conformance URL=amqp://guest:guest@127.0.0.1:5673/  (no URL: an in-process Warren)
#   ADMIN_URL=http://guest:guest@127.0.0.1:15673/ also runs the access-control area
conformance: $(STAMP)
	$(BIN)/python -m conformance $(if $(URL),--url '$(URL)',) $(if $(ADMIN_URL),--admin-url '$(ADMIN_URL)',)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) data data2 .pytest_cache .hypothesis
