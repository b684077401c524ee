"""Gunicorn settings for the ride-duration service; every value can come from the environment.

gunicorn web_service_mlflow.predict:app      # this file is read from the working directory
"""

import atexit
import os
import shutil
import sys
import tempfile


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"{name} must be a whole number >= 1, got {raw!r}")
    return int(raw)


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in {"1", "true", "yes", "0", "false", "no"}:
        raise SystemExit(f"{name} must be true or false, got {raw!r}")
    return raw in {"1", "true", "yes"}


# --- where to listen -------------------------------------------------------------------------
bind = os.environ.get("BIND", f"0.0.0.0:{_int('PORT', 9696)}")

# --- how many requests at once -----------------------------------------------------------------
# Prediction is CPU-bound: one worker per core is the default; threads help only while I/O waits.
workers = _int("WEB_CONCURRENCY", os.cpu_count() or 1)
threads = _int("GUNICORN_THREADS", 1)
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
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
preload_app = _bool("GUNICORN_PRELOAD", True)

# --- housekeeping ------------------------------------------------------------------------------
# Heartbeat files on tmpfs: a slow disk must not make the arbiter kill healthy workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The app writes its own JSON line per request (request ID, route, status, latency, batch size);
# Gunicorn's access log is off unless asked for.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Gunicorn's control socket sits at one path per user: two servers on a host would fight over it.
control_socket_disable = not _bool("GUNICORN_CONTROL_SOCKET", False)

# --- metrics across workers ------------------------------------------------------------------
# prometheus-client's multiprocess mode: every worker writes its counts into one folder that
# /metrics adds up. The folder must be set before the app is imported, and start empty.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    _own_metrics_dir = tempfile.mkdtemp(prefix="ride-duration-metrics-", dir=_shm)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_metrics_dir
    _master_pid = os.getpid()

    def _remove_own_metrics_dir() -> None:
        # Forked workers inherit this handler; only the master may remove the folder.
        if os.getpid() == _master_pid:
            shutil.rmtree(_own_metrics_dir, ignore_errors=True)

    atexit.register(_remove_own_metrics_dir)


def on_starting(server):
    """Drop counts a previous server left in a reused metrics folder."""
    # With preload_app the app, and so the metrics, loaded before this hook: it created a missing
    # folder (or stopped the server naming it), and this master's own files, such as the served
    # model's gauge, are already there and must stay. Without preload the workers create it.
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if not os.path.isdir(folder):
        return
    own = f"_{os.getpid()}.db"
    for name in os.listdir(folder):
        if name.endswith(".db") and not name.endswith(own):
            os.remove(os.path.join(folder, name))


def child_exit(server, worker):
    """A dead worker's live gauges must stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


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
