"""Runs that someone with write access to the artifact store could leave: loading them runs a command.

Each command touches a marker file, so a test can tell whether the service ran it.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shlex
import zipfile
from pathlib import Path

import yaml

RUN_ID = "abad1dea" * 4
EXPERIMENT = "1"


class Touch:
    """Unpickled, this runs `touch <marker>`: what any pickle can do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def touching_pickle(marker: Path) -> bytes:
    return pickle.dumps(Touch(marker))


def touching_skops(marker: Path) -> bytes:
    """A skops file whose one node calls os.system: skops runs it if told to trust `os.system`."""
    command = {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
               "content": json.dumps(f"touch {shlex.quote(str(marker))}"), "is_json": True}  # fmt: skip
    arguments = {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": [command]}
    schema = {"__class__": "system", "__module__": "os", "__loader__": "ConstructorFromReduceNode",
              "content": arguments, "protocol": 2, "_skops_version": "0.16.0"}  # fmt: skip
    built = io.BytesIO()
    with zipfile.ZipFile(built, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return built.getvalue()


def sklearn_run(root: Path, serialization: str, model: bytes, **flavor: object) -> Path:
    """A run folder `<root>/1/<RUN_ID>/artifacts/model` holding `model` as MLflow's sklearn flavour; its folder."""
    name = "model.skops" if serialization == "skops" else "model.pkl"
    sklearn = {"pickled_model": name, "serialization_format": serialization, "sklearn_version": "1.9.1", **flavor}
    return write_model(root, {"sklearn": sklearn}, {name: model})


def model_folder(root: Path) -> Path:
    return root / EXPERIMENT / RUN_ID / "artifacts" / "model"


def write_model(root: Path, flavors: dict, files: dict[str, bytes]) -> Path:
    folder = model_folder(root)
    folder.mkdir(parents=True)
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": flavors, "run_id": RUN_ID}))
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder
