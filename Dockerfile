# The ride-duration service, serving the embedded default run unless RUN_ID or MODEL_URI says otherwise.
#   docker build -t ride-duration . && docker run -p 9696:9696 ride-duration
# The slim image serves one run baked in at build time, without scikit-learn (web_service_mlflow.baked):
#   docker build --target slim [--build-arg RUN_ID=...] -t ride-duration:slim .
# Without a Docker engine: `make image` / `make image-slim` build them with buildah, `make test-image` checks both.
ARG BASE_IMAGE=python:3.11-slim

# --- pipenv, in a venv of its own so that none of it reaches a runtime image ----------------------
FROM ${BASE_IMAGE} AS pipenv

# pip trusts the system's CA bundle rather than its own, so a proxy's CA added to the base image
# (or mounted over the bundle at build time) is trusted too.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIPENV_VERBOSITY=-1 \
    PATH=/opt/venv/bin:$PATH

# With /opt/venv/bin first on PATH, `pipenv install --system` installs into /opt/venv.
RUN python3 -m venv /opt/pipenv \
    && /opt/pipenv/bin/pip install pipenv==2026.10.3 \
    && python3 -m venv /opt/venv
WORKDIR /build
COPY Pipfile Pipfile.lock ./

# --- build: the serving packages (the Pipfile's [packages], as `make run`) -------------------------
# Then out goes what no runtime needs, measured on this venv (472 MB): the test suites numpy, scipy
# and scikit-learn ship (67 MB, which the packages never import) and the venv's own pip and
# setuptools (26 MB: nothing installs at run time). The bytecode pip compiled stays: without it
# every start would compile the libraries again, in memory (PYTHONDONTWRITEBYTECODE).
FROM pipenv AS build
RUN /opt/pipenv/bin/pipenv install --system --deploy \
    && find /opt/venv/lib -depth -type d -name tests -exec rm -rf {} + \
    && python3 -m pip uninstall --yes --quiet pip setuptools

# --- slim-build: the slim image's packages alone (the Pipfile's [slim]): no scikit-learn, no scipy -
FROM pipenv AS slim-build
RUN /opt/pipenv/bin/pipenv install --system --deploy --categories slim \
    && find /opt/venv/lib -depth -type d -name tests -exec rm -rf {} + \
    && python3 -m pip uninstall --yes --quiet pip setuptools

# --- code: the service's own files, compiled to bytecode once for every image ---------------------
# The app never writes bytecode at run time (PYTHONDONTWRITEBYTECODE), so it is compiled here.
FROM ${BASE_IMAGE} AS code
WORKDIR /app
COPY gunicorn.conf.py test.py ./
COPY web_service/ web_service/
COPY web_service_mlflow/ web_service_mlflow/
RUN python3 -m compileall -q web_service web_service_mlflow gunicorn.conf.py

# --- bake: one run's verified compiled form, made with scikit-learn here, for the slim image -------
# RUN_ID (default: the embedded run) and MLFLOW_TRACKING_URI or MODEL_ARTIFACT_ROOT name the run,
# as they do at run time; they are build arguments here only, never in the image.
FROM build AS bake
ARG RUN_ID=""
ARG MLFLOW_TRACKING_URI=""
ARG MODEL_ARTIFACT_ROOT=""
WORKDIR /app
COPY --from=code /app ./
COPY mlruns/ mlruns/
RUN python3 -m web_service_mlflow.baked --out /app/baked

# --- runtime: what both images share: the user, the port, the health check, the launcher ----------
FROM ${BASE_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

# A user of its own, named by number so that Kubernetes-style runAsNonRoot checks can verify it.
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin app
WORKDIR /app
EXPOSE 9696
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-m", "web_service.healthcheck"]
# Gunicorn's master is PID 1 (exec form), so SIGTERM reaches it directly: workers stop taking new
# connections, answer what they had accepted, and exit within GUNICORN_GRACEFUL_TIMEOUT (30 s).
# Give `docker stop` at least that: docker stop --time 35.
STOPSIGNAL SIGTERM
# web_service.serve checks the server settings (one line each that is wrong, exit 3), then runs
# Gunicorn in the same process, as `gunicorn` would: it reads ./gunicorn.conf.py, binds 0.0.0.0:9696
# and takes the rest from the environment. Arguments after the image name go to Gunicorn.
ENTRYPOINT ["python3", "-m", "web_service.serve"]

# --- slim: serves the baked run only, and refuses any other at start ------------------------------
FROM runtime AS slim
COPY --from=slim-build /opt/venv /opt/venv
COPY --from=code /app ./
COPY --from=bake /app/baked baked/
USER 10001:10001
CMD ["web_service_mlflow.predict_baked:app"]

# --- full: the default target (last) ----------------------------------------------------------------
FROM runtime
ENV MODEL_CACHE_DIR=/home/app/.cache/ride-duration/models
COPY --from=build /opt/venv /opt/venv
COPY --from=code /app ./
COPY mlruns/ mlruns/
USER 10001:10001
# Compile and verify the embedded forest once, at build time: its verified form lands in the cache,
# so a container serving the default run starts without loading scikit-learn.
RUN python3 -c "from web_service_mlflow.predict import app"
CMD ["web_service_mlflow.predict:app"]
