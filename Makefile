# pitr-bot developer entry points. On a fresh machine you only need Python >= 3.11 and make:
#
#   make run            install into .venv (if needed), load .env if present, run `pitr-bot serve`
#   make test           install with the [test] extra, run the test suite (this is what CI runs)
#   make demo           run `pitr-bot console` against simulated AWS (moto); no Slack or AWS needed
#   make lint           ruff check, ruff format --check, hadolint Dockerfile, cfn-lint + checkov deploy/
#   make check-config   load .env if present and validate the configuration
#   make clean          remove .venv, .venv-lint and build/test caches (keeps *.db state files and .env)
#
# One virtualenv (.venv) is shared by every target. Installs are editable (-e) so the bot and
# the tests always run the working tree; a stamp file means pip runs again only when
# pyproject.toml changes (or after `make clean`). Use another interpreter with e.g.
# `make run PYTHON=python3.12`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
# The CloudFormation linters live in their own virtualenv (deploy/requirements-lint.txt says why).
VENV_LINT := .venv-lint
STAMP_LINT := $(VENV_LINT)/.installed
TEMPLATES := deploy/pitr-bot.yml deploy/member-role.yml

# Export every variable in .env (plain KEY=value lines, quote values with spaces) if it exists.
LOAD_ENV := if [ -f .env ]; then set -a; . ./.env; set +a; fi

.DEFAULT_GOAL := help
.PHONY: help run test lint check-config demo clean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "pitr-bot needs Python >= 3.11; $(PYTHON) is older. Try: make $(MAKECMDGOALS) PYTHON=python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check -e .
	@touch $@

# The [test] extra is a superset of the runtime install, so it satisfies `make run` too.
$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@ $(STAMP_RUN)

$(STAMP_LINT): deploy/requirements-lint.txt | $(BIN)/python
	$(PYTHON) -m venv $(VENV_LINT) || { rm -rf $(VENV_LINT); exit 1; }
	$(VENV_LINT)/bin/python -m pip install -q --disable-pip-version-check -r deploy/requirements-lint.txt
	@touch $@

run: $(STAMP_RUN)
	@$(LOAD_ENV); exec $(BIN)/pitr-bot serve

check-config: $(STAMP_RUN)
	@$(LOAD_ENV); exec $(BIN)/pitr-bot check-config

# pytest exits 5 when it collects no tests; that is a failure here, never masked.
# The suite mostly waits (on servers, subprocesses, polls), so it runs in TEST_WORKERS processes;
# each test file stays in one process, in order, with its own moto server and fake Slack.
TEST_WORKERS ?= 4
test: $(STAMP_TEST)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP_TEST) $(STAMP_LINT)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile
	$(VENV_LINT)/bin/cfn-lint $(TEMPLATES)
	$(VENV_LINT)/bin/checkov --quiet --compact --skip-download --framework cloudformation $(addprefix -f ,$(TEMPLATES))

# The console's simulated AWS is moto, which lives in the [test] extra. .env is deliberately
# not loaded so the demo can never pick up real AWS or Slack credentials from it.
demo: $(STAMP_TEST)
	$(BIN)/pitr-bot console

clean:
	rm -rf $(VENV) $(VENV_LINT) build dist *.egg-info .pytest_cache .ruff_cache
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
