"""The course-style service: Flask calling `mlflow.pyfunc.load_model(...).predict(features)` per request.

The course's web-service-mlflow/predict.py, pointed at this repo's embedded run (or RUN_ID in
the local store), and taking a list of rides too so that the batch case can be compared.

    gunicorn bench.apps.course_baseline:app
"""

import os

import mlflow.pyfunc
from flask import Flask, jsonify, request

from web_service_mlflow.layout import LOCAL_STORE, run_artifacts
from web_service_mlflow.settings import default_run_id

RUN_ID = os.getenv("RUN_ID") or default_run_id(LOCAL_STORE)
logged_model = str(run_artifacts(LOCAL_STORE, RUN_ID) / "model")
model = mlflow.pyfunc.load_model(logged_model)
# The course fits RandomForestRegressor(**params, n_jobs=-1), so every predict() starts joblib
# workers. This repo's run predicts single-threaded (n_jobs=None); BASELINE_N_JOBS picks which
# of the two the baseline serves with: "-1", as the course's own model (the default), or "none".
N_JOBS = os.getenv("BASELINE_N_JOBS", "-1")
model.get_raw_model().steps[-1][1].set_params(n_jobs=None if N_JOBS == "none" else int(N_JOBS))


def prepare_features(ride):
    features = {}
    features["PU_DO"] = "%s_%s" % (ride["PULocationID"], ride["DOLocationID"])  # noqa: UP031 - as the course wrote it
    features["trip_distance"] = ride["trip_distance"]
    return features


def predict(features):
    preds = model.predict(features)
    return [float(pred) for pred in preds]


app = Flask("duration-prediction")


@app.route("/predict", methods=["POST"])
def predict_endpoint():
    body = request.get_json()
    rides = body if isinstance(body, list) else [body]
    preds = predict([prepare_features(ride) for ride in rides])
    results = [{"duration": pred, "model_version": RUN_ID} for pred in preds]
    return jsonify(results if isinstance(body, list) else results[0])
