# The two commands a new machine needs (README): `make run` and `make test`.
# Both install pipenv if it is missing, then the locked dependencies into ./.venv.

PYTHON ?= python3
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_VERBOSITY := -1
PIPENV := $(PYTHON) -m pipenv
APP ?= web_service_mlflow.predict:app

.PHONY: run test check pipenv install install-dev lint image bench wrk

run: install  ## serve the embedded default model on 0.0.0.0:9696
	$(PIPENV) run gunicorn $(APP)

test: install-dev  ## lint, check the Gunicorn config, run every test
	$(MAKE) check

check:  ## the test suite alone, in the installed environment
	$(PIPENV) run ruff check .
	$(PIPENV) run ruff format --check .
	$(PIPENV) run gunicorn --check-config $(APP)
	$(PIPENV) run pytest

pipenv:
	@$(PIPENV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --user pipenv \
		|| $(PYTHON) -m pip install pipenv

install: pipenv
	$(PIPENV) install --deploy

install-dev: pipenv
	$(PIPENV) install --deploy --dev

bench: install-dev wrk  ## the serving benchmark (bench/serving.py): about 8 minutes, writes bench/results/
	$(PIPENV) run python -m bench.serving

wrk:
	@command -v wrk >/dev/null || { echo "installing wrk (apt)"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq wrk; fi; }

image:  ## build the container image (needs a Docker engine, or podman as `docker`)
	docker build -t ride-duration:latest .
