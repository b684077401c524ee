"""How a model answers fast: its compiled forms, each verified bit for bit against the pipeline.

Nothing in the Flask app needs to know this package exists: `Predictor` asks `fastpath` for the
engine at load, and every engine answers `predict(rides)` the same way. See docs/performance.md.
"""
