"""Which model of a run to serve, whatever logged it.

A run holds its models in one of two places:
- MLflow 1.x and 2.x (and this project's training) keep a model under the run's own artifacts,
  at any artifact path: `<root>/<experiment>/<RUN_ID>/artifacts/<path>/MLmodel`;
- MLflow 3's `log_model` makes a *logged model* outside the run,
  `<root>/<experiment>/models/m-<id>/artifacts/MLmodel`, whose MLmodel names its source run.

Both kinds count. When the run holds exactly one model, that one is served; when it holds several,
MODEL_ARTIFACT_PATH (or the path of `MODEL_URI=runs:/<RUN_ID>/<path>`) names one, by artifact
path, logged-model name or model ID, and the error lists them all. A run-artifact model and a
logged model of the same name are one model, found where MLflow's `runs:/` resolution looks first:
the run's artifacts.
"""

from __future__ import annotations

from dataclasses import dataclass

from web_service.errors import ModelLoadError

ARTIFACT_PATH_VARIABLE = "MODEL_ARTIFACT_PATH"


@dataclass(frozen=True)
class RunModel:
    """One model a run holds: under its artifacts (`path`) or as an MLflow 3 logged model (`model_id`)."""

    name: str | None  # artifact path, or the logged model's name (None when the store does not say)
    location: str  # where its MLmodel folder is: store key, artifact path or models:/ URI
    model_id: str | None = None  # m-<id>, for logged models
    flavor: str | None = None

    def matches(self, wanted: str) -> bool:
        return wanted.strip("/") in {self.name, self.model_id}

    def label(self) -> str:
        """`models_mlflow (xgboost)`, `m-0d02… "model" (sklearn, logged model)`."""
        kind = ", ".join(part for part in (self.flavor, "logged model" if self.model_id else None) if part)
        if self.model_id:
            named = f' "{self.name}"' if self.name else ""
            return f"{self.model_id}{named}" + (f" ({kind})" if kind else "")
        return f"{self.name}" + (f" ({kind})" if kind else "")


def choose_model(models: list[RunModel], wanted: str | None, where: str) -> RunModel:
    """The one model to serve, or a ModelLoadError listing what the run holds."""
    models = _distinct(models)
    if wanted:
        for model in models:
            if model.matches(wanted):
                return model
        held = f"it holds {listing(models)}" if models else "it holds no model at all"
        raise ModelLoadError(f"{where}: the run has no model {wanted!r}; {held}{_unnamed_hint(models)}")
    if len(models) == 1:
        return models[0]
    if not models:
        raise ModelLoadError(
            f"{where}: the run holds no model: no MLmodel under its artifacts and no MLflow 3 logged model "
            "whose source run it is; check RUN_ID, and that the model was logged to this run"
        )
    raise ModelLoadError(
        f"{where}: the run holds {len(models)} models: {listing(models)}; "
        f"set {ARTIFACT_PATH_VARIABLE} to the one to serve (or MODEL_URI=runs:/<RUN_ID>/<path>){_unnamed_hint(models)}"
    )


def listing(models: list[RunModel]) -> str:
    return ", ".join(model.label() for model in models)


def _distinct(models: list[RunModel]) -> list[RunModel]:
    # A logged model that shares its name with a run-artifact model is the same model, logged twice.
    artifact_names = {model.name for model in models if model.model_id is None}
    return [model for model in models if model.model_id is None or model.name not in artifact_names]


def _unnamed_hint(models: list[RunModel]) -> str:
    if any(model.model_id and not model.name for model in models):
        return " (logged models' names live in the tracking server; without it, name them by model ID)"
    return ""
