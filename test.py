"""Post the course's example ride to the service and print the answer as JSON.

    python test.py                                  # http://localhost:9696/predict
    python test.py http://my-host:9696/predict      # or set PREDICT_URL

Standard library only, so any Python 3 can run it.
"""

import http.client
import json
import os
import sys
import urllib.error
import urllib.request

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PREDICT_URL", "http://localhost:9696/predict")
    try:
        request = urllib.request.Request(url, json.dumps(RIDE).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            print(response.read().decode())
    except urllib.error.HTTPError as error:  # the service answered with an error: show it
        print(error.read().decode(), file=sys.stderr)
        return 1
    except urllib.error.URLError as error:
        print(f"cannot reach {url}: {error.reason}; is the service running?", file=sys.stderr)
        return 1
    except (ValueError, http.client.HTTPException) as error:  # not a URL, or not an HTTP answer
        print(f"cannot post to {url}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
