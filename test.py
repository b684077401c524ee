"""Post the course's example ride to the service and print the answer.

    python test.py                                  # http://localhost:9696/predict
    python test.py http://my-host:9696/predict      # or set PREDICT_URL
"""

import os
import sys

import requests

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PREDICT_URL", "http://localhost:9696/predict")
    try:
        response = requests.post(url, json=RIDE, timeout=10)
    except requests.ConnectionError:
        print(f"cannot connect to {url}: is the service running?", file=sys.stderr)
        return 1
    print(response.json())
    return 0 if response.ok else 1


if __name__ == "__main__":
    sys.exit(main())
