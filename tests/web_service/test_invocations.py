import pytest

from tests.conftest import make_rides
from web_service.app import create_app
from web_service.features import prepare_features
from web_service.settings import AppSettings

RIDES = make_rides(5, seed=51)
COLUMNS = ["PULocationID", "DOLocationID", "trip_distance"]


@pytest.fixture
def expected(linear_pipeline) -> list[float]:
    return linear_pipeline.predict([prepare_features(ride) for ride in RIDES]).tolist()


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": COLUMNS, "data": [[r[c] for c in COLUMNS] for r in RIDES]}},
        {
            "dataframe_split": {
                "index": list(range(5)),
                "columns": COLUMNS,
                "data": [[r[c] for c in COLUMNS] for r in RIDES],
            }
        },
        {"dataframe_records": RIDES},
        {"instances": RIDES},
        {"inputs": RIDES},
        {"inputs": {c: [r[c] for r in RIDES] for c in COLUMNS}},
        {"instances": RIDES, "params": {"ignored": True}},
    ],
    ids=["split", "split-with-index", "records", "instances", "inputs", "inputs-as-columns", "with-params"],
)
def test_every_mlflow_json_form_gives_the_pipeline_predictions(client, expected, body):
    response = client.post("/invocations", json=body)

    assert response.status_code == 200
    assert response.json == {"predictions": expected}


def test_csv_with_a_header_row_is_accepted(client, expected):
    lines = [",".join(COLUMNS)] + [",".join(str(ride[c]) for c in COLUMNS) for ride in RIDES]

    response = client.post("/invocations", data="\n".join(lines), content_type="text/csv")

    assert response.json == {"predictions": expected}


def test_csv_with_windows_line_ends_is_accepted(client, expected):
    lines = [",".join(COLUMNS)] + [",".join(str(ride[c]) for c in COLUMNS) for ride in RIDES]

    response = client.post("/invocations", data="\r\n".join(lines), content_type="text/csv")

    assert response.json == {"predictions": expected}


def test_csv_that_does_not_parse_gets_400_saying_where(client):
    # Found by schemathesis: a lone carriage return inside an unquoted field.
    response = client.post("/invocations", data='a,"b\r\nc', content_type="text/csv")

    assert response.status_code == 400
    assert response.json == {
        "error": {
            "code": "invalid_request",
            "message": "the body is not valid CSV (unexpected end of data)",
            "details": [{"field": "body", "expected": "CSV with a header row", "received": 'a,"b\r\nc'}],
        }
    }


def test_a_csv_row_longer_than_its_header_gets_400_naming_the_row(client):
    body = "PULocationID,DOLocationID,trip_distance\n10,50,40\n10,50,40,99\n"

    response = client.post("/invocations", data=body, content_type="text/csv")

    assert response.status_code == 400
    assert response.json["error"]["message"] == "CSV row 2 has more fields than the header"
    assert response.json["error"]["details"] == [{"field": "[1]", "expected": "3 fields", "received": 4}]


def test_invocations_and_predict_agree(client):
    predicted = [answer["duration"] for answer in client.post("/predict", json=RIDES).json]

    assert client.post("/invocations", json={"dataframe_records": RIDES}).json["predictions"] == predicted


def test_a_body_without_exactly_one_input_key_gets_400(client):
    response = client.post("/invocations", json={"instances": RIDES, "inputs": RIDES})

    assert response.status_code == 400
    assert response.json == {
        "error": {
            "code": "invalid_request",
            "message": "the body must hold exactly one of dataframe_split, dataframe_records, instances, inputs",
            "details": [
                {"field": "body", "expected": "one of dataframe_split, dataframe_records, instances, inputs",
                 "received": ["inputs", "instances"]},
            ],
        }
    }  # fmt: skip


def test_bad_rides_are_named_by_position_as_in_predict(client):
    response = client.post("/invocations", json={"dataframe_records": [RIDES[0], {"PULocationID": 1}]})

    assert response.status_code == 400
    assert [d["field"] for d in response.json["error"]["details"]] == ["[1].DOLocationID", "[1].trip_distance"]


def test_ragged_columns_get_400(client):
    response = client.post("/invocations", json={"inputs": {"PULocationID": [1, 2], "DOLocationID": [3]}})

    assert response.status_code == 400
    assert response.json["error"]["message"] == "inputs as columns needs one list per column, all of one length"


def test_other_content_types_get_415(client):
    response = client.post("/invocations", data="x", content_type="application/octet-stream")

    assert response.status_code == 415
    assert response.json["error"]["code"] == "unsupported_media_type"


def test_ping_and_version_answer_like_mlflow(client):
    from importlib.metadata import version

    assert client.get("/ping").status_code == 200
    assert client.get("/version").get_data(as_text=True) == version("mlflow")


def test_invocations_needs_the_token_when_one_is_set(predictor):
    client = create_app(AppSettings(api_tokens=("t0k3n",)), predictor).test_client()
    body = {"dataframe_records": RIDES}

    assert client.post("/invocations", json=body).status_code == 401
    assert client.post("/invocations", json=body, headers={"Authorization": "Bearer t0k3n"}).status_code == 200
    assert client.get("/ping").status_code == 200


def test_a_split_with_integral_float_zones_as_pandas_writes_them_predicts_as_with_integers(client, expected):
    data = [[float(ride["PULocationID"]), float(ride["DOLocationID"]), ride["trip_distance"]] for ride in RIDES]

    response = client.post("/invocations", json={"dataframe_split": {"columns": COLUMNS, "data": data}})

    assert response.status_code == 200
    assert response.json == {"predictions": expected}


@pytest.mark.parametrize(("row", "received"), [([10, 50, 40, 99], 4), ([10, 50], 2), ({"PULocationID": 10}, "object")])
def test_a_split_row_that_is_not_one_value_per_column_gets_400(client, row, received):
    body = {"dataframe_split": {"columns": COLUMNS, "data": [[10, 50, 40], row]}}

    response = client.post("/invocations", json=body)

    assert response.status_code == 400
    assert response.json == {
        "error": {
            "code": "invalid_request",
            "message": "dataframe_split.data[1] must hold 3 values, one per column",
            "details": [{"field": "[1]", "expected": "3 values", "received": received}],
        }
    }


def test_keys_besides_the_one_input_key_are_ignored(client, expected):
    body = {"instances": RIDES, "params": {"ignored": True}, "x-extra": 42}

    assert client.post("/invocations", json=body).json == {"predictions": expected}


@pytest.mark.parametrize(
    ("value", "field"),
    [("1_0", "PULocationID"), (" 10", "PULocationID"), ("\u0661\u0660", "DOLocationID"), ("nan", "trip_distance")],
)
def test_csv_values_python_reads_as_numbers_but_no_csv_writer_makes_are_refused(client, value, field):
    ride = {"PULocationID": "10", "DOLocationID": "50", "trip_distance": "1.5"} | {field: value}
    body = ",".join(COLUMNS) + "\n" + ",".join(ride[c] for c in COLUMNS)

    response = client.post("/invocations", data=body, content_type="text/csv")

    assert response.status_code == 400
    [detail] = response.json["error"]["details"]
    assert (detail["field"], detail["received"]) == (f"[0].{field}", value)


def test_csv_numbers_as_pandas_writes_them_are_read(client, linear_pipeline):
    body = ",".join(COLUMNS) + "\n10.0,50,1e-05\n+3,7,.5\n"
    rides = [{"PULocationID": 10, "DOLocationID": 50, "trip_distance": 1e-05},
             {"PULocationID": 3, "DOLocationID": 7, "trip_distance": 0.5}]  # fmt: skip

    response = client.post("/invocations", data=body, content_type="text/csv")

    assert response.json == {"predictions": linear_pipeline.predict([prepare_features(r) for r in rides]).tolist()}


@pytest.mark.parametrize(("name", "received"), [(["trip_distance"], "array"), ({"name": "trip_distance"}, "object")])
def test_a_split_column_named_by_a_list_or_an_object_gets_400_naming_it(client, name, received):
    body = {"dataframe_split": {"columns": ["PULocationID", "DOLocationID", name], "data": [[10, 50, 40]]}}

    response = client.post("/invocations", json=body)

    assert response.status_code == 400
    assert response.json == {
        "error": {
            "code": "invalid_request",
            "message": "dataframe_split.columns[2] must be a column name",
            "details": [{"field": "columns[2]", "expected": "a column name (string)", "received": received}],
        }
    }


def test_a_csv_header_naming_a_column_twice_gets_400_naming_it(client):
    # csv.DictReader would keep the last DOLocationID and predict from it, silently.
    body = "PULocationID,DOLocationID,trip_distance,DOLocationID\n10,50,1.5,99\n"

    response = client.post("/invocations", data=body, content_type="text/csv")

    assert response.status_code == 400
    assert response.json == {
        "error": {
            "code": "invalid_request",
            "message": "the CSV header names the column 'DOLocationID' 2 times",
            "details": [{"field": "header", "expected": "each column named once", "received": "DOLocationID"}],
        }
    }
