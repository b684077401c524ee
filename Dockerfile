# The ride-duration service, serving the embedded default run unless RUN_ID says otherwise.
#   docker build -t ride-duration . && docker run -p 9696:9696 ride-duration
# First version: a later hardening pass adds a non-root user, multi-stage and a health check.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

RUN pip install pipenv
COPY Pipfile Pipfile.lock ./
RUN pipenv install --system --deploy

COPY gunicorn.conf.py test.py ./
COPY web_service/ web_service/
COPY web_service_mlflow/ web_service_mlflow/
COPY mlruns/ mlruns/

EXPOSE 9696
# gunicorn reads ./gunicorn.conf.py: it binds 0.0.0.0:9696 and takes the rest from the environment.
ENTRYPOINT ["gunicorn"]
CMD ["web_service_mlflow.predict:app"]
