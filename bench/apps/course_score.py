"""The course-style batch scorer: the MLOps Zoomcamp's score.py, pointed at this repo's run.

    MLFLOW_TRACKING_URI=sqlite:///mlruns/mlflow.db python bench/apps/course_score.py \\
        green_tripdata_2021-01.parquet scored.parquet 2021 1 [RUN_ID]

Run from the repo root: the tracking database records the run's artifacts relative to it. As in
the course: the whole file into pandas, the features as a list of dicts, the run's model through
`mlflow.pyfunc.load_model("runs:/<RUN_ID>/model")`, one `predict`, the course's columns written
back. Only the course's 1..60 minute filter is left out: every ride is scored, as batch scoring
must. The RUN_ID defaults to the embedded run's (mlruns/default_run_id).
"""

import os
import sys

import mlflow
import pandas as pd


def read_dataframe(filename, year, month):
    df = pd.read_parquet(filename)
    # Green files name their times lpep_*, yellow ones tpep_*.
    taxi = "lpep" if "lpep_pickup_datetime" in df.columns else "tpep"
    df["pickup_datetime"] = df[f"{taxi}_pickup_datetime"]
    df["duration"] = df[f"{taxi}_dropoff_datetime"] - df[f"{taxi}_pickup_datetime"]
    df["duration"] = df.duration.dt.total_seconds() / 60
    df["ride_id"] = f"{year:04d}/{month:02d}_" + df.index.astype("str")
    return df


def prepare_dictionaries(df):
    categorical = ["PULocationID", "DOLocationID"]
    df[categorical] = df[categorical].astype(str)
    df["PU_DO"] = df["PULocationID"] + "_" + df["DOLocationID"]
    categorical = ["PU_DO"]
    numerical = ["trip_distance"]
    dicts = df[categorical + numerical].to_dict(orient="records")
    return dicts


def load_model(run_id):
    logged_model = f"runs:/{run_id}/model"
    model = mlflow.pyfunc.load_model(logged_model)
    return model


def save_results(df, y_pred, run_id, output_file):
    df_result = pd.DataFrame()
    df_result["ride_id"] = df["ride_id"]
    df_result["pickup_datetime"] = df["pickup_datetime"]
    df_result["PULocationID"] = df["PULocationID"]
    df_result["DOLocationID"] = df["DOLocationID"]
    df_result["actual_duration"] = df["duration"]
    df_result["predicted_duration"] = y_pred
    df_result["diff"] = df_result["actual_duration"] - df_result["predicted_duration"]
    df_result["model_version"] = run_id
    df_result.to_parquet(output_file, index=False)


def apply_model(input_file, run_id, output_file, year, month):
    print(f"reading the data from {input_file}...", file=sys.stderr)
    df = read_dataframe(input_file, year, month)
    dicts = prepare_dictionaries(df)

    print(f"loading the model with RUN_ID={run_id}...", file=sys.stderr)
    model = load_model(run_id)

    print("applying the model...", file=sys.stderr)
    y_pred = model.predict(dicts)

    print(f"saving the result to {output_file}...", file=sys.stderr)
    save_results(df, y_pred, run_id, output_file)
    return output_file


def run():
    input_file, output_file = sys.argv[1], sys.argv[2]
    year, month = int(sys.argv[3]), int(sys.argv[4])
    if len(sys.argv) > 5:
        run_id = sys.argv[5]
    else:
        with open("mlruns/default_run_id") as f:
            run_id = f.read().strip()
    mlflow.set_tracking_uri(os.getenv("MLFLOW_TRACKING_URI", "sqlite:///mlruns/mlflow.db"))
    apply_model(input_file=input_file, run_id=run_id, output_file=output_file, year=year, month=month)


if __name__ == "__main__":
    run()
