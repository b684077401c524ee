"""Real processes for the test suite (tests/) and the benchmarks (bench/), owned by neither.

Both start the service under Gunicorn, an S3 endpoint (SeaweedFS) and `mlflow server` on free
loopback ports, wait for them to answer and weigh them; this package does it once for both:

- `processes`: free ports, waiting for a process to answer, process trees and their memory (PSS);
- `gunicorn`: the service under Gunicorn with the repo's gunicorn.conf.py, started and stopped;
- `backends`: SeaweedFS (S3) and `mlflow server`;
- `fixtures`: the models older releases made (tests/fixtures/), read by path;
- `trips`: small TLC-shaped trip files and the training command, for whatever trains a run;
- `registry`: registered model versions on a real `mlflow server`, trained by that command.

Nothing here is part of the service: the image (Dockerfile, .dockerignore) leaves it out, and
nothing under web_service/ or web_service_mlflow/ may import it.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
