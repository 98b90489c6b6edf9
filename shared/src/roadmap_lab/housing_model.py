"""The housing classifier's registry contract, shared by data-pipelines (which registers every
model it trains) and model-monitoring (which serves ``models:/<name>@champion``); the two
projects meet only through the MLflow registry, never through imports.

A registered version is an MLflow pyfunc logged from code: MLflow copies *this file* into the
model and runs it at load time, so loading a version needs MLflow, numpy and pandas, and no
project code (not even roadmap_lab) and no pickle. This file therefore imports nothing from
roadmap_lab at module level, and the pyfunc part only runs when MLflow executes the file (under
a generated module name); an ordinary import only defines the contract:

* the model's artifacts: ``params`` (the JSON parameters: standardised features + logistic
  regression, ``PARAMS_KEYS``) and ``training_window`` (CSV: the rows of the window the model
  was trained on, ``WINDOW_COLUMNS``, ``held_out`` = 1 for the rows it never saw);
* the signature: inputs, the raw housing features (doubles); outputs, ``probability`` (of class
  1) and ``predicted_class`` (0/1, probability >= 0.5);
* the version's tags (``TAG_*``) and the alias a gate moves (``CHAMPION``);
* the engineered features and the probability computed from the parameters (``add_features``,
  ``probability``), the one implementation the trainer and the served model use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models import ModelSignature

REGISTERED_MODEL = "housing-classifier"
CHAMPION = "champion"
MODEL_FORMAT = "data-pipelines/logistic-regression/v1"
# The model's name in its run (log_model's ``name``) and its two artifacts.
MODEL_NAME = "model"
PARAMS_ARTIFACT = "params"
WINDOW_ARTIFACT = "training_window"
PARAMS_KEYS = ("format", "features", "classes", "scaler_mean", "scaler_scale", "coef", "intercept")

TARGET = "clf_target"
TIMESTAMP = "timestamp"
HELD_OUT = "held_out"
ENGINEERED = ["RoomsPerOccupant", "BedroomShare", "LogPopulation", "LogAveOccup"]
OUTPUT_PROBABILITY = "probability"
OUTPUT_CLASS = "predicted_class"

# Tags of every registered version (the data window, the published artefact's hashes).
TAG_SLICE_ID = "slice_id"
TAG_WINDOW_SLICES = "window_slices"  # comma-separated slice ids, oldest first
TAG_WINDOW_START = "window_start"  # first timestamp of the training window (ISO)
TAG_WINDOW_END = "window_end"  # last timestamp of the training window (ISO)
TAG_MANIFEST_SHA256 = "manifest_sha256"
TAG_MODEL_SHA256 = "model_sha256"
# MLflow's error code for "registered model does not exist": with a model that lacks the alias,
# the only registry answers that mean "no champion"; every other error fails closed.
DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"


def raw_features() -> list[str]:
    """The model's inputs: the housing features as ``roadmap_lab.data`` loads them."""
    from roadmap_lab.data import HOUSING_FEATURES

    return list(HOUSING_FEATURES)


def window_columns() -> list[str]:
    """The training-window artifact's columns."""
    return ["id", *raw_features(), TIMESTAMP, TARGET, HELD_OUT]


def add_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The raw features plus the four engineered ones the model also reads."""
    import numpy as np

    return frame.assign(
        RoomsPerOccupant=frame["AveRooms"] / frame["AveOccup"],
        BedroomShare=frame["AveBedrms"] / frame["AveRooms"],
        LogPopulation=np.log1p(frame["Population"]),
        LogAveOccup=np.log1p(frame["AveOccup"]),
    )


def probability(params: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    """P(class 1) from the JSON parameters, for rows that hold the parameters' features (the
    engineered ones included: ``add_features``)."""
    import numpy as np

    x = frame[params["features"]].to_numpy(dtype=float)
    z = (x - np.asarray(params["scaler_mean"])) / np.asarray(params["scaler_scale"])
    logits = z @ np.asarray(params["coef"]) + params["intercept"]
    return np.asarray(1.0 / (1.0 + np.exp(-logits)))


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    missing = [key for key in PARAMS_KEYS if key not in params]
    if missing or params["format"] != MODEL_FORMAT:
        raise ValueError(
            f"not {MODEL_FORMAT} parameters (format {params.get('format')!r}, missing "
            f"{missing or 'nothing'})"
        )
    return params


def signature() -> ModelSignature:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in raw_features()]),
        outputs=Schema([ColSpec("double", OUTPUT_PROBABILITY), ColSpec("long", OUTPUT_CLASS)]),
    )


def pyfunc_code() -> Path:
    """This file: the code MLflow logs as the model (``python_model=``)."""
    return Path(__file__).resolve()


def log_pyfunc(params_file: Path, window_file: Path) -> Any:
    """Log the model of a version into the active MLflow run (models from code: this file, the
    two artifacts, the signature, pinned requirements so MLflow infers none); its ModelInfo."""
    import importlib.metadata

    import mlflow

    return mlflow.pyfunc.log_model(
        name=MODEL_NAME,
        python_model=str(pyfunc_code()),
        artifacts={PARAMS_ARTIFACT: str(params_file), WINDOW_ARTIFACT: str(window_file)},
        signature=signature(),
        pip_requirements=[
            f"{name}=={importlib.metadata.version(name)}" for name in ("mlflow", "numpy", "pandas")
        ],
    )


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version ``models:/<name>@<alias>`` names, or None when the registry says the model
    does not exist or the model has no such alias (read from its aliases: the server answers a
    missing alias with the same error code as a malformed request). Any other error (an outage,
    a refusal) is raised: fail closed."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code == DOES_NOT_EXIST:
            return None
        raise
    if alias not in (model.aliases or {}):
        return None
    return client.get_model_version(name, model.aliases[alias])


def _set_as_mlflow_model() -> None:
    """Define the pyfunc and hand it to MLflow (models from code)."""
    import mlflow
    import pandas as pd
    from mlflow.pyfunc import PythonModel

    # No type hints on the methods: MLflow would read predict's as a signature; the logged
    # signature (``signature()``) is the contract.
    class HousingClassifier(PythonModel):
        def load_context(self, context):
            path = Path(context.artifacts[PARAMS_ARTIFACT])
            self.params = check_params(json.loads(path.read_text(encoding="utf-8")))

        def predict(self, context, model_input, params=None):
            frame = pd.DataFrame(model_input)
            proba = probability(self.params, add_features(frame))
            return pd.DataFrame(
                {OUTPUT_PROBABILITY: proba, OUTPUT_CLASS: (proba >= 0.5).astype("int64")}
            )

    mlflow.models.set_model(HousingClassifier())


# MLflow runs this file as the model's code under a generated module name; imported as a module
# of roadmap_lab it only defines the contract.
if __name__ != "roadmap_lab.housing_model":
    _set_as_mlflow_model()
