"""The servers the service is measured against, under the same Gunicorn settings."""
