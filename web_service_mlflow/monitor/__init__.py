"""Drift and quality reports: current rides against a run's reference profile (`python -m ...monitor`)."""
