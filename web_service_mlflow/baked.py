"""One run's verified compiled form, baked into an image at build time and served without scikit-learn.

    RUN_ID=<run> python -m web_service_mlflow.baked --out baked   # at build time, with scikit-learn
    gunicorn web_service_mlflow.predict_baked:app                 # at run time, without it

Baking loads the run as the service would (RUN_ID, MODEL_URI, MODEL_ARTIFACT_ROOT,
MLFLOW_TRACKING_URI, else the embedded default run) and keeps its compiled form with the probe
rides and the pipeline's answers to them (web_service.engine.fastpath), the run's reference
profile and what /model says of it. Serving checks the form against those answers again, then
serves it; it refuses, with one line, anything else: another RUN_ID, a MODEL_URI, a canary or a
shadow, or a form that no longer gives its answers, since each would need scikit-learn.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from web_service.drift import Profile, ProfileError, profile_setting
from web_service.engine import fastpath
from web_service.environment import env_str, read
from web_service.errors import ModelLoadError, SettingsError, StartupError
from web_service.predictor import Predictor
from web_service.settings import AppSettings

logger = logging.getLogger(__name__)
# Where the image keeps it: /app/baked, beside the code.
BAKED = Path(__file__).resolve().parent.parent / "baked"
MANIFEST, FORM, PROFILE = "baked.json", "compiled", "profile.json"
# What would name a model other than the baked one; each would need scikit-learn to load it.
OTHER_MODELS = ("MODEL_URI", "MODEL_ARTIFACT_PATH", "CANARY_MODEL_URI", "CANARY_RUN_ID", "SHADOW_MODEL_URI",
                "SHADOW_RUN_ID", "MODEL_PATH")  # fmt: skip
IGNORED_SOURCES = ("MLFLOW_TRACKING_URI", "MODEL_ARTIFACT_ROOT")


def load_baked(environ: Mapping[str, str], folder: Path = BAKED) -> tuple[AppSettings, Predictor]:
    """The settings and the baked run, or StartupError when the environment asks for anything else."""
    manifest = _manifest(folder)
    run_id = manifest["run_id"]
    refuse_other_models(environ, run_id)
    settings = AppSettings.from_env(environ)
    where = f"the run {run_id} baked into this image"
    verified = fastpath.load_verified(folder / FORM, where)
    if verified is None:
        raise ModelLoadError(f"{where} no longer gives the answers recorded with it (logged above), and this image "
                             "has no scikit-learn to load the run itself: rebuild the image")  # fmt: skip
    model, engine = verified
    profile = profile_setting(environ) or _profile(folder / PROFILE)
    return settings, Predictor(model, model_version=manifest["model_version"], source=manifest["source"],
                               metadata=manifest["metadata"], engine=engine, profile=profile)  # fmt: skip


def refuse_other_models(environ: Mapping[str, str], run_id: str) -> None:
    """SettingsError naming the first variable that asks for a model other than `run_id`."""
    wanted = env_str(environ, "RUN_ID")
    if wanted is not None and wanted != run_id:
        raise SettingsError(f"RUN_ID={wanted}: this image serves only the run baked into it at build time, "
                            f"{run_id}; another run needs scikit-learn: use the full image, or bake that run "
                            "into one")  # fmt: skip
    for name in OTHER_MODELS:
        if env_str(environ, name):
            raise SettingsError(f"{name} is set: this image serves only the run baked into it at build time, "
                                f"{run_id}; another model needs scikit-learn: use the full image")  # fmt: skip
    ignored = [name for name in IGNORED_SOURCES if env_str(environ, name)]
    if ignored:
        logger.warning("serving the run %s baked into this image; ignoring %s", run_id, ", ".join(ignored))


def _manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        message = f"no baked run in {folder} ({error}): build the image's slim target, which bakes one"
        raise ModelLoadError(message) from None


def _profile(path: Path) -> Profile | None:
    if not path.is_file():
        logger.warning("the baked run has no reference profile; live drift is off")
        return None
    try:
        return Profile.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, ProfileError) as error:
        logger.warning("cannot use the baked run's reference profile (%s); live drift is off", error)
        return None


def bake(environ: Mapping[str, str], out: Path) -> Predictor:
    """Load the model the environment names, with scikit-learn, and keep its verified compiled form in `out`."""
    from web_service.trust import granting
    from web_service_mlflow.loader import load_predictor
    from web_service_mlflow.settings import ModelSettings, SourceKind

    settings = ModelSettings.from_env(environ)
    if settings.kind is SourceKind.REGISTRY:  # an alias moves; a baked image would not follow it
        raise SettingsError(f"MODEL_URI={settings.model_uri} names a registry model: bake a run (RUN_ID) instead")
    with tempfile.TemporaryDirectory(prefix="bake-") as cache:
        with granting(settings.trust):
            predictor = load_predictor(replace(settings, cache_dir=Path(cache)))
        if not predictor.engine.compiled:
            raise ModelLoadError(f"{predictor.model_version} has no verified compiled form "
                                 f"({predictor.engine.detail}): serve it with the full image")  # fmt: skip
        [form] = [entry for entry in (Path(cache) / "compiled").iterdir() if not entry.name.startswith(".")]
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(form, out / FORM)
    (out / FORM).chmod(0o755)  # the cache's own folders are private to their user; an image's user differs
    manifest = {"run_id": predictor.metadata.get("run_id") or predictor.model_version,
                "model_version": predictor.model_version, "metadata": predictor.metadata,
                "source": f"baked into the image at build time (of {predictor.source})"}  # fmt: skip
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    if predictor.profile is not None and settings.drift_profile is None:
        (out / PROFILE).write_text(json.dumps(predictor.profile.to_json()))
    return predictor


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m web_service_mlflow.baked", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--out", type=Path, default=BAKED, help="the folder to write (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        predictor = bake(read(), args.out)
    except StartupError as error:  # one line on stderr, exit code 1: the image build stops here
        raise SystemExit(f"cannot bake: {error.message}") from None
    print(f"baked {predictor.model_version} ({predictor.engine.name}) into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
