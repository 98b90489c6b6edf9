from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from roadmap_lab import housing_model as contract


def housing_rows(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "MedInc": rng.uniform(1, 10, n),
            "HouseAge": rng.integers(1, 50, n).astype(float),
            "AveRooms": rng.uniform(3, 8, n),
            "AveBedrms": rng.uniform(0.8, 1.5, n),
            "Population": rng.uniform(100, 3000, n),
            "AveOccup": rng.uniform(1.5, 4, n),
            "Latitude": rng.uniform(33, 41, n),
            "Longitude": rng.uniform(-124, -115, n),
        }
    )
    return frame[contract.raw_features()]


def random_params(seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    columns = [*contract.raw_features(), *contract.ENGINEERED]
    return {
        "format": contract.MODEL_FORMAT,
        "features": columns,
        "classes": [0, 1],
        "scaler_mean": rng.uniform(0, 5, len(columns)).tolist(),
        "scaler_scale": rng.uniform(0.5, 3, len(columns)).tolist(),
        "coef": rng.normal(0, 0.3, len(columns)).tolist(),
        "intercept": 0.1,
    }


def test_engineered_features_and_probability_from_the_parameters() -> None:
    frame = housing_rows()
    params = random_params()
    features = contract.add_features(frame)
    row = features.iloc[3]
    assert row["RoomsPerOccupant"] == pytest.approx(row["AveRooms"] / row["AveOccup"])
    assert row["BedroomShare"] == pytest.approx(row["AveBedrms"] / row["AveRooms"])
    assert row["LogPopulation"] == pytest.approx(np.log1p(row["Population"]))
    logit = params["intercept"] + sum(
        c * (row[name] - m) / s
        for name, m, s, c in zip(
            params["features"],
            params["scaler_mean"],
            params["scaler_scale"],
            params["coef"],
            strict=True,
        )
    )
    assert contract.probability(params, features)[3] == pytest.approx(1 / (1 + np.exp(-logit)))
    assert contract.check_params(params) is params
    with pytest.raises(ValueError, match="missing"):
        contract.check_params({"format": contract.MODEL_FORMAT})


def test_the_contract_module_defines_no_model_when_imported() -> None:
    import mlflow.models.model

    assert mlflow.models.model.__mlflow_model__ is None


@pytest.mark.slow
def test_a_saved_version_loads_and_predicts_without_roadmap_lab(tmp_path: Path) -> None:
    """The pyfunc logged from this file, loaded by MLflow in a child process whose path holds no
    roadmap_lab: its signature, and the probabilities the parameters give."""
    import mlflow.pyfunc

    frame = housing_rows()
    params = random_params()
    (tmp_path / "model.json").write_text(json.dumps(params))
    window = frame.assign(id=range(len(frame)), timestamp="2021-01-01", clf_target=0, held_out=0)
    window[contract.window_columns()].to_csv(tmp_path / "window.csv", index=False)
    model_dir = tmp_path / "saved"
    mlflow.pyfunc.save_model(
        str(model_dir),
        python_model=str(contract.pyfunc_code()),
        artifacts={
            contract.PARAMS_ARTIFACT: str(tmp_path / "model.json"),
            contract.WINDOW_ARTIFACT: str(tmp_path / "window.csv"),
        },
        signature=contract.signature(),
        pip_requirements=["mlflow"],
    )
    frame.to_csv(tmp_path / "rows.csv", index=False)
    code = (
        "import sys, pandas as pd, mlflow.pyfunc\n"
        "assert 'roadmap_lab' not in sys.modules\n"
        f"model = mlflow.pyfunc.load_model({str(model_dir)!r})\n"
        f"out = model.predict(pd.read_csv({str(tmp_path / 'rows.csv')!r}))\n"
        "assert 'roadmap_lab' not in sys.modules\n"
        "print(out.to_json(orient='records'))\n"
    )
    path = [p for p in sys.path if p and not (Path(p) / "roadmap_lab").exists()]
    child = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    out = pd.DataFrame(json.loads(child.stdout.strip().splitlines()[-1]))
    expected = contract.probability(params, contract.add_features(frame))
    assert list(out.columns) == [contract.OUTPUT_PROBABILITY, contract.OUTPUT_CLASS]
    assert np.allclose(out[contract.OUTPUT_PROBABILITY], expected)
    assert (out[contract.OUTPUT_CLASS] == (expected >= 0.5)).all()
    loaded = mlflow.pyfunc.load_model(str(model_dir))
    inputs = loaded.metadata.get_input_schema().input_names()
    assert inputs == contract.raw_features()
    assert loaded.metadata.get_output_schema().input_names() == [
        contract.OUTPUT_PROBABILITY,
        contract.OUTPUT_CLASS,
    ]
    with pytest.raises(Exception, match="MedInc"):
        loaded.predict(frame.drop(columns=["MedInc"]))
