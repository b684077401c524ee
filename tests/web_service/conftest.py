import pytest

from web_service.app import create_app
from web_service.predictor import Predictor
from web_service.settings import AppSettings

MODEL_VERSION = "test-model-1"


@pytest.fixture
def predictor(linear_pipeline) -> Predictor:
    return Predictor(linear_pipeline, model_version=MODEL_VERSION, source="test fixture")


@pytest.fixture
def app(predictor):
    return create_app(AppSettings(max_body_bytes=2048), predictor)


@pytest.fixture
def client(app):
    return app.test_client()
