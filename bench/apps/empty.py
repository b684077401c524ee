"""The floor: an endpoint that parses the JSON body and answers a constant, with no model at all.

gunicorn bench.apps.empty:app
"""

from flask import Flask, jsonify, request

app = Flask("empty")


@app.route("/predict", methods=["POST"])
def predict_endpoint():
    request.get_json()
    return jsonify({"duration": 0.0, "model_version": "empty"})
