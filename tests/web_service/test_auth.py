import hmac

import pytest

from web_service.app import create_app
from web_service.errors import SettingsError
from web_service.settings import AppSettings

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


@pytest.fixture
def client(predictor):
    return create_app(AppSettings(api_tokens=("alpha-token", "beta-token")), predictor).test_client()


@pytest.mark.parametrize("token", ["alpha-token", "beta-token"])
def test_any_configured_token_opens_predict(client, token):
    response = client.post("/predict", json=RIDE, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("header", "received"),
    [(None, "nothing"), ("Bearer wrong", "a wrong token"), ("Basic alpha-token", "a wrong token")],
)
def test_a_missing_or_wrong_token_gets_401_in_the_json_error_shape(client, header, received):
    headers = {"Authorization": header} if header else {}

    response = client.post("/predict", json=RIDE, headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="ride-duration"'
    assert response.json == {
        "error": {
            "code": "unauthorized",
            "message": "this endpoint needs Authorization: Bearer <token>",
            "details": [{"field": "Authorization", "expected": "Bearer <token>", "received": received}],
        }
    }


@pytest.mark.parametrize("path", ["/health", "/ready", "/model"])
def test_health_readiness_and_model_stay_open(client, path):
    assert client.get(path).status_code == 200


def test_no_token_configured_means_no_check(predictor):
    client = create_app(AppSettings(), predictor).test_client()

    assert client.post("/predict", json=RIDE).status_code == 200


def test_tokens_are_compared_in_constant_time(monkeypatch, client):
    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append(b) or real(a, b))

    client.post("/predict", json=RIDE, headers={"Authorization": "Bearer alpha-token"})

    assert compared == [b"alpha-token", b"beta-token"]  # every token, even after a match


def test_api_token_setting_takes_a_comma_separated_list():
    assert AppSettings.from_env({"API_TOKEN": " one , two,,"}).api_tokens == ("one", "two")


@pytest.mark.parametrize("value", [",", " , ", ",,,", " ,\t, "])
def test_an_api_token_of_separators_alone_stops_start_up_instead_of_opening_predict(value):
    with pytest.raises(SettingsError) as raised:
        AppSettings.from_env({"API_TOKEN": value})

    assert raised.value.message == (
        f"API_TOKEN holds no token, got {value!r}: set one token, or several separated by commas "
        "(unset API_TOKEN to leave /predict open)"
    )


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_api_token_is_unset_and_predict_open(value):
    assert AppSettings.from_env({"API_TOKEN": value}).api_tokens == ()
