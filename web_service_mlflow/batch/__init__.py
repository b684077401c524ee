"""Batch scoring by run ID: TLC trip parquet in, one prediction per ride out (see __main__)."""
