# The ride-duration service, serving the embedded default run unless RUN_ID or MODEL_URI says otherwise.
#   docker build -t ride-duration . && docker run -p 9696:9696 ride-duration
# Without a Docker engine: `make image` builds it with buildah, `make test-image` runs and checks it.
ARG BASE_IMAGE=python:3.11-slim

# --- build: the locked dependencies, into a virtual environment the runtime stage copies ---------
FROM ${BASE_IMAGE} AS build

# pip trusts the system's CA bundle rather than its own, so a proxy's CA added to the base image
# (or mounted over the bundle at build time) is trusted too.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIPENV_VERBOSITY=-1 \
    PATH=/opt/venv/bin:$PATH

# pipenv lives in a venv of its own, so that none of it reaches the runtime image. With
# /opt/venv/bin first on PATH, `pipenv install --system` installs into /opt/venv.
RUN python3 -m venv /opt/pipenv \
    && /opt/pipenv/bin/pip install pipenv==2026.10.3 \
    && python3 -m venv /opt/venv
WORKDIR /build
COPY Pipfile Pipfile.lock ./
RUN /opt/pipenv/bin/pipenv install --system --deploy

# --- runtime ---------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    MODEL_CACHE_DIR=/home/app/.cache/ride-duration/models

# A user of its own, named by number so that Kubernetes-style runAsNonRoot checks can verify it.
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv

WORKDIR /app
COPY gunicorn.conf.py test.py ./
COPY web_service/ web_service/
COPY web_service_mlflow/ web_service_mlflow/
COPY mlruns/ mlruns/
# Bytecode compiled now: the app never writes it at run time (PYTHONDONTWRITEBYTECODE).
RUN python3 -m compileall -q web_service web_service_mlflow gunicorn.conf.py

USER 10001:10001
# Compile and verify the embedded forest once, at build time: its verified form lands in the cache,
# so a container serving the default run starts without loading scikit-learn.
RUN python3 -c "from web_service_mlflow.predict import app"

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
CMD ["web_service_mlflow.predict:app"]
