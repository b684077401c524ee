"""Everything that talks to MLflow: training, and loading a model by RUN_ID.

Builds on `web_service`; the dependency never runs the other way.
"""
