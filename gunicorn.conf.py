"""Gunicorn settings for the ride-duration service; every value can come from the environment.

gunicorn web_service_mlflow.predict:app      # this file is read from the working directory

The environment is read through web_service.environment, with the reads web_service.serve (the
launcher) checks before Gunicorn starts: the two cannot disagree.
"""

import os
import sys

from web_service.environment import env_str, gunicorn_raw_env, read
from web_service.serve import EXIT_STARTUP_FAILED, own_metrics_folder, problems, server_settings

# The same reads as `python -m web_service.serve` checks first: one line for each wrong value, exit 3.
ENV = read()
if found := problems(ENV):
    print(*(f"cannot start: {line}" for line in found), sep="\n", file=sys.stderr)
    raise SystemExit(EXIT_STARTUP_FAILED)
SETTINGS = server_settings(ENV)

# --- where to listen -------------------------------------------------------------------------
bind = SETTINGS.bind  # BIND, else 0.0.0.0:PORT (9696)

# --- how many requests at once -----------------------------------------------------------------
# Prediction is CPU-bound: one worker per core is the default; threads help only while I/O waits.
workers = SETTINGS.workers
threads = SETTINGS.threads
timeout = SETTINGS.timeout
graceful_timeout = SETTINGS.graceful_timeout
keepalive = SETTINGS.keepalive
# Gunicorn's sync request handling behind a small event loop (web_service/server/worker.py): slow
# clients (sending or reading) cost a file descriptor, not a worker, and on SIGTERM it answers
# every connection it holds or finds queued. With threads, Gunicorn's gthread worker, which has
# neither; both answer Gunicorn's own errors in the service's JSON shape.
worker_class = (
    "web_service.server.worker.DrainingWorker" if threads == 1 else "web_service.server.worker.ThreadedWorker"
)

# --- loading the model -------------------------------------------------------------------------
# Load the app, and so the model, once in the master before forking: workers share its memory
# pages, and a model that cannot load stops the whole server with one message instead of
# every worker failing in turn.
preload_app = SETTINGS.preload

# --- housekeeping ------------------------------------------------------------------------------
# Heartbeat files on tmpfs: a slow disk must not make the arbiter kill healthy workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The app writes its own JSON line per request (request ID, route, status, latency, batch size);
# Gunicorn's access log is off unless asked for.
accesslog = SETTINGS.accesslog
loglevel = SETTINGS.loglevel
# Gunicorn's control socket sits at one path per user: two servers on a host would fight over it.
control_socket_disable = not SETTINGS.control_socket

# --- metrics across workers ------------------------------------------------------------------
# prometheus-client's multiprocess mode: every worker writes its counts into one folder that
# /metrics adds up. Unless PROMETHEUS_MULTIPROC_DIR names one, a fresh folder of this server's;
# the master puts it in its environment (raw_env) before it loads the app, and the workers inherit
# it: prometheus-client looks for it nowhere else (web_service.environment.gunicorn_raw_env).
metrics_folder = env_str(ENV, "PROMETHEUS_MULTIPROC_DIR") or own_metrics_folder()
raw_env = gunicorn_raw_env(ENV, {"PROMETHEUS_MULTIPROC_DIR": metrics_folder})


def on_starting(server):
    """Drop counts a previous server left in a reused metrics folder."""
    # With preload_app the app, and so the metrics, loaded before this hook: it created a missing
    # folder (or stopped the server naming it), and this master's own files, such as the served
    # model's gauge, are already there and must stay. Without preload the workers create it.
    if raw_env and server.cfg.env.get("PROMETHEUS_MULTIPROC_DIR") != metrics_folder:
        server.log.warning("--env replaced gunicorn.conf.py's raw_env: set PROMETHEUS_MULTIPROC_DIR, or each "
                           "worker's /metrics counts only its own requests")  # fmt: skip
    if not os.path.isdir(metrics_folder):
        return
    own = f"_{os.getpid()}.db"
    for name in os.listdir(metrics_folder):
        if name.endswith(".db") and not name.endswith(own):
            os.remove(os.path.join(metrics_folder, name))


def child_exit(server, worker):
    """A dead worker's live gauges must stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, metrics_folder)


def when_ready(server):
    """Watch the model's source (a registry alias) for a new model to swap in (web_service.server.hotswap)."""
    # Only an app loaded here (GUNICORN_PRELOAD) can be swapped here; other apps import nothing more.
    if "model_watch" in getattr(getattr(server.app, "callable", None), "extensions", {}):
        from web_service.server.hotswap import start_watching

        start_watching(server)


def on_reload(server):
    """SIGHUP replaces the workers; with a watched source it also checks for a new model at once."""
    hotswap = sys.modules.get("web_service.server.hotswap")
    if hotswap is not None:
        hotswap.reloading(server)
