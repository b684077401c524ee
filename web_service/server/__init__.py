"""What sits between Gunicorn and the Flask app: the worker, the request class, the model swap.

The app (web_service.app and its views) runs without any of this under Flask's test client; these
modules make it hold up under Gunicorn: slow clients, draining on SIGTERM, one system call fewer
per request, a new model without a restart. See docs/architecture.md and docs/performance.md.
"""
