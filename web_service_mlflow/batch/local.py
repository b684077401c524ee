"""The local engine: stream each input by record batch through the predictor, in one process.

Memory stays bounded by BATCH_ROWS whatever the file's size: each batch is read (five columns),
checked, scored and appended to the output part before the next is read.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq

from web_service.predictor import Predictor
from web_service_mlflow.batch.progress import Progress, Totals
from web_service_mlflow.batch.rides import REJECTS_SCHEMA, TripFile, score_batch, scored_schema
from web_service_mlflow.batch.storage import Destination, parquet_file, part_writer, reading, writing

# Rides per record batch: large enough that per-batch costs vanish (0.1% at this size), small
# enough that a batch's arrays stay a few tens of MB.
BATCH_ROWS = 256 * 1024


@dataclass(frozen=True)
class Job:
    """What to score and where the results go; the same for both engines."""

    trips: tuple[TripFile, ...]
    output: Destination
    rejects: Destination | None
    with_actual: bool

    def part_name(self, index: int, row_group: int | None = None) -> str:
        """A part's name: its input's position and name, so that parts sort in input order."""
        stem = PurePosixPath(self.trips[index].location.split("?")[0]).stem
        group = "" if row_group is None else f"-{row_group:05d}"
        return f"part-{index:05d}{group}-{stem}.parquet"


def run_local(job: Job, predictor: Predictor, progress: Progress) -> Totals:
    """Score every input into its part of the output (and of the rejects, when asked for)."""
    totals = Totals()
    for index, trip in enumerate(job.trips):
        name = job.part_name(index)
        file_totals = score_file(trip, job, predictor, job.output.part(name),
                                 job.rejects.part(name) if job.rejects else None, progress)  # fmt: skip
        progress.file_done(trip.location, file_totals)
        totals.files += 1
        totals.add(file_totals.scored, file_totals.reasons)
    return totals


def score_file(
    trip: TripFile, job: Job, predictor: Predictor, output: str, rejects: str | None, progress: Progress | None = None,
    row_groups: list[int] | None = None,
) -> Totals:  # fmt: skip
    """Score one file (or some of its row groups) into one output part and one rejects part."""
    totals = Totals()
    with ExitStack() as stack:
        parquet = stack.enter_context(parquet_file(trip.location))
        scored_out = stack.enter_context(_writer(output, scored_schema(job.with_actual)))
        rejects_out = stack.enter_context(_writer(rejects, REJECTS_SCHEMA)) if rejects else None
        for first_row, batch in _batches(parquet, trip, row_groups):
            result = score_batch(batch, trip, first_row, predictor, job.with_actual)
            with writing(output):
                scored_out.write_table(result.rides)
            if rejects_out is not None and result.rejects.num_rows:
                with writing(rejects):
                    rejects_out.write_table(result.rejects)
            totals.add(result.rides.num_rows, result.reasons)
            if progress is not None:
                progress.advance(batch.num_rows)
    return totals


@contextmanager
def _writer(location: str, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """A part writer whose opening and closing (the upload, on S3) fail in one line naming it;
    what the body raises (a read or scoring error) passes through unchanged."""
    manager = part_writer(location, schema)
    with writing(location):
        writer = manager.__enter__()
    try:
        yield writer
    except BaseException:
        if not manager.__exit__(*sys.exc_info()):
            raise
        return
    with writing(location):
        manager.__exit__(None, None, None)


def _batches(parquet: pq.ParquetFile, trip: TripFile, row_groups: list[int] | None):
    """(index of the batch's first row in the file, batch), in file order; read errors name the file."""
    groups = list(range(len(trip.row_groups))) if row_groups is None else row_groups
    for group in groups:
        first_row = trip.first_row(group)
        batches = parquet.iter_batches(BATCH_ROWS, row_groups=[group], columns=trip.columns)
        while True:
            with reading(trip.location):
                batch = next(batches, None)
            if batch is None:
                break
            yield first_row, batch
            first_row += batch.num_rows
