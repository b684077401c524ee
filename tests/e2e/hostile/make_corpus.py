"""Write corpus.jsonl: hostile and broken requests as raw bytes, each with the status it must get.

    python tests/e2e/hostile/make_corpus.py

One line per request: {"name", "request", "status"}; "request" is a list of pieces, each text (the
bytes, as latin-1) or {"repeat": text, "times": n} for the long runs a few cases need. The statuses are the
contract, decided here by hand; tests/e2e/test_hostile_requests.py sends every request over a raw
socket to a real Gunicorn and holds the server to them, and to the JSON error shape on every
error. Rerun after adding cases; the file is committed so that a reviewer sees every request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}
OK, BAD, NOT_FOUND, NOT_ALLOWED, TOO_LARGE, MEDIA = 200, 400, 404, 405, 413, 415


def http(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
         version: str = "HTTP/1.1") -> bytes:  # fmt: skip
    """A request with Host, and Content-Length for a body, unless `headers` says otherwise."""
    lines = [f"{method} {path} {version}", "Host: ride-duration"]
    given = dict(headers or {})
    if body and not any(name.lower() in ("content-length", "transfer-encoding") for name in given):
        given["Content-Length"] = str(len(body))
    lines += [f"{name}: {value}" for name, value in given.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def post_json(path: str, payload: bytes | str, content_type: str = "application/json") -> bytes:
    body = payload.encode() if isinstance(payload, str) else payload
    return http("POST", path, body, {"Content-Type": content_type})


def ride(**changes) -> str:
    return json.dumps(RIDE | changes)


def request_line_cases() -> Iterator[tuple[str, bytes, int]]:
    yield "garbage line", b"GARBAGE\r\n\r\n", BAD
    yield "no version", b"GET /health\r\n\r\n", BAD
    yield "HTTP/2.0 on plain text", b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", BAD
    yield "HTTP/1.2 is served as 1.1", b"GET /health HTTP/1.2\r\nHost: x\r\n\r\n", OK
    yield "HTTP/1.0 is served", b"GET /health HTTP/1.0\r\n\r\n", OK
    yield "lower-case method", b"get /health HTTP/1.1\r\nHost: x\r\n\r\n", BAD
    yield "method with a slash", b"GE/T /health HTTP/1.1\r\nHost: x\r\n\r\n", BAD
    yield "request line of 5,000 bytes", http("GET", "/" + "a" * 5000), BAD
    yield "tab in the request line", b"GET\t/health HTTP/1.1\r\nHost: x\r\n\r\n", BAD
    yield "two spaces in the request line", b"GET  /health HTTP/1.1\r\nHost: x\r\n\r\n", BAD
    yield "NUL in the path", b"GET /hea\x00lth HTTP/1.1\r\nHost: x\r\n\r\n", NOT_FOUND
    yield "bare LF line ends", b"GET /health HTTP/1.1\nHost: x\n\n", BAD
    yield "absolute-form URI", http("GET", "http://ride-duration/health"), OK
    yield "asterisk-form on GET", http("GET", "*"), BAD
    yield "high bytes in the path", http("GET", "/h\xe9alth"), NOT_FOUND
    yield "unknown method on a route", http("BREW", "/predict"), NOT_ALLOWED
    yield "TRACE", http("TRACE", "/health"), NOT_ALLOWED
    yield "CONNECT", http("CONNECT", "ride-duration:443"), NOT_FOUND
    for method in ("PUT", "DELETE", "PATCH"):
        yield f"{method} /predict", http(method, "/predict", ride().encode()), NOT_ALLOWED
    yield "GET /predict", http("GET", "/predict"), NOT_ALLOWED
    yield "POST /health", http("POST", "/health", b"{}"), NOT_ALLOWED
    yield "OPTIONS /predict", http("OPTIONS", "/predict"), OK
    yield "HEAD /health", http("HEAD", "/health"), OK


def path_cases() -> Iterator[tuple[str, bytes, int]]:
    for path in ("/", "/predict/", "/Predict", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/admin",
                 "/metrics/../predict", "/.env", "/predict%00", "/health?x=" + "a" * 3000, "/" + "b" * 4000,
                 "/%ff%fe", "/docs/../openapi.json", "//health"):  # fmt: skip
        status = OK if path.startswith(("/health?", "//health")) else NOT_FOUND
        yield f"GET {path[:40]}", http("GET", path), status
    yield "query string on predict", post_json("/predict?debug=1&x=%00", ride()), OK


def header_cases() -> Iterator[tuple[str, bytes, int]]:
    body = ride().encode()
    yield "header name with a space", http("POST", "/predict", body, {"Bad Name": "x"}), BAD
    yield "header name with a colon only", b"GET /health HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n", BAD
    yield "NUL in a header value", http("GET", "/health", headers={"X-A": "a\x00b"}), BAD
    yield "CR in a header value", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", BAD
    yield "obsolete line folding", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", BAD
    yield "header of 9,000 bytes", http("GET", "/health", headers={"X-Big": "a" * 9000}), 431
    yield "101 headers", http("GET", "/health", headers={f"X-{i}": "1" for i in range(101)}), 431
    yield "100 headers", http("GET", "/health", headers={f"X-{i}": "1" for i in range(99)}), OK
    yield "two Content-Lengths", http("POST", "/predict", body, {"Content-Length": str(len(body)),
                                                                  "content-length": str(len(body) + 1)}), BAD  # fmt: skip
    yield "negative Content-Length", http("POST", "/predict", b"", {"Content-Length": "-1"}), BAD
    yield "Content-Length with a sign", http("POST", "/predict", body, {"Content-Length": f"+{len(body)}"}), BAD
    yield "Content-Length in hex", http("POST", "/predict", body, {"Content-Length": hex(len(body))}), BAD
    yield "Content-Length and chunked", http("POST", "/predict", b"0\r\n\r\n", {"Content-Length": "5",
                                                                                 "Transfer-Encoding": "chunked"}), BAD  # fmt: skip
    json_type = {"Content-Type": "application/json"}
    yield "gzip transfer coding", http("POST", "/predict", body, {"Transfer-Encoding": "gzip"} | json_type), 501
    yield "chunked, gzip", http("POST", "/predict", body, {"Transfer-Encoding": "chunked, gzip"} | json_type), BAD
    yield (
        "gzip, chunked",
        http("POST", "/predict", b"0\r\n\r\n", {"Transfer-Encoding": "gzip, chunked"} | json_type),
        501,
    )
    yield (
        "chunk size not hex",
        http("POST", "/predict", b"zz\r\n{}\r\n0\r\n\r\n", {"Transfer-Encoding": "chunked"} | json_type),
        BAD,
    )
    yield (
        "chunk longer than said",
        http("POST", "/predict", b"2\r\n{}}\r\n0\r\n\r\n", {"Transfer-Encoding": "chunked"} | json_type),
        BAD,
    )
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:])) + b"0\r\n\r\n"
    yield "a ride in two chunks", http("POST", "/predict", chunked, {"Transfer-Encoding": "chunked",
                                                                      "Content-Type": "application/json"}), OK  # fmt: skip
    yield "chunk extension", http("POST", "/predict", b"%x;ext=1\r\n%s\r\n0\r\n\r\n" % (len(body), body),
                                  {"Transfer-Encoding": "chunked"}), OK  # fmt: skip
    yield "trailer after the last chunk", http("POST", "/predict", b"%x\r\n%s\r\n0\r\nX-T: 1\r\n\r\n" % (len(body), body),
                                               {"Transfer-Encoding": "chunked"}), OK  # fmt: skip
    yield "Expect: 100-continue", http("POST", "/predict", body, {"Expect": "100-continue"}), OK
    yield "unknown Expect", http("POST", "/predict", body, {"Expect": "200-ok"}), 417
    yield "X-Request-ID injection", http("GET", "/health", headers={"X-Request-ID": 'a"}, {"evil": 1'}), OK
    yield "X-Request-ID of 500 bytes", http("GET", "/health", headers={"X-Request-ID": "r" * 500}), OK
    yield "Authorization without API_TOKEN", http("POST", "/predict", body, {"Authorization": "Bearer x"}), OK
    yield "Content-Type with a charset", http("POST", "/predict", body,
                                              {"Content-Type": "application/json; charset=utf-8"}), OK  # fmt: skip
    yield "no Host on HTTP/1.1", b"GET /health HTTP/1.1\r\n\r\n", OK


def body_cases() -> Iterator[tuple[str, bytes, int]]:
    for name, payload in [
        ("empty body", ""), ("whitespace body", "   "), ("null", "null"), ("true", "true"), ("a number", "42"),
        ("a string", '"ride"'), ("an empty object", "{}"), ("an empty list", "[]"), ("truncated JSON", '{"PULocationID": 1'),
        ("trailing comma", '{"PULocationID": 1,}'), ("single quotes", "{'PULocationID': 1}"), ("comments", "// x\n{}"),
        ("two documents", ride() + ride()), ("NaN literal", ride(trip_distance=float("nan"))),
        ("Infinity literal", ride(trip_distance=float("inf"))), ("-Infinity literal", ride(trip_distance=float("-inf"))),
        ("list of lists", "[[1, 2, 3]]"), ("list with null", f"[{ride()}, null]"), ("list of 1,001 rides", "[" + ",".join([ride()] * 1001) + "]"),
        ("1,000 empty objects", "[" + ",".join(["{}"] * 1000) + "]"), ("nested 1,000 deep", "[" * 1000 + "]" * 1000),
        ("objects nested 5,000 deep", '{"a":' * 5000 + "1" + "}" * 5000), ("lone surrogate", '{"PULocationID": "\\ud800"}'),
        ("invalid UTF-8", b'{"PULocationID": "\xff\xfe"}'.decode("latin-1")),
        ("huge integer", ride(PULocationID=10**400)), ("huge exponent", '{"PULocationID": 10, "DOLocationID": 50, "trip_distance": 1e999}'),
    ]:  # fmt: skip
        yield f"/predict {name}", post_json("/predict", payload.encode("latin-1")), BAD
    # JSON's encodings are detected from the first bytes (RFC 4627), as Flask does: accepted.
    yield "/predict UTF-8 BOM", post_json("/predict", b"\xef\xbb\xbf" + ride().encode()), OK
    yield "/predict UTF-16", post_json("/predict", ride().encode("utf-16")), OK
    yield "/predict form-encoded", post_json("/predict", "PULocationID=1&DOLocationID=2&trip_distance=3",
                                             "application/x-www-form-urlencoded"), MEDIA  # fmt: skip
    yield "/predict text/plain JSON", post_json("/predict", ride(), "text/plain"), OK
    yield "/predict no Content-Type", http("POST", "/predict", ride().encode()), OK
    yield "/predict multipart", post_json("/predict", "--b\r\n\r\nx\r\n--b--", "multipart/form-data; boundary=b"), MEDIA
    yield "/predict body of 1 MB + 1", post_json("/predict", b" " * (1_048_576 + 1)), TOO_LARGE
    yield "/predict declared 2 GB", http("POST", "/predict", b"", {"Content-Length": str(2**31)}), TOO_LARGE
    yield (
        "/predict ride with extra fields",
        post_json("/predict", ride(VendorID=2, fare_amount=12.5, note="x" * 100)),
        OK,
    )


def field_cases() -> Iterator[tuple[str, bytes, int]]:
    values = {
        "PULocationID": [(1, OK), (265, OK), (14.0, OK), (0, BAD), (266, BAD), (-1, BAD), (14.5, BAD), ("10", BAD),
                         (True, BAD), (None, BAD), ([10], BAD), ({"id": 10}, BAD), (2**63, BAD), (1e308, BAD)],
        "DOLocationID": [(264, OK), (0, BAD), ("", BAD), (False, BAD), (-0.0, BAD), (50.000001, BAD)],
        "trip_distance": [(0, OK), (0.0, OK), (-0.0, OK), (499.99, OK), (1e-300, OK), (500, BAD), (-0.01, BAD),
                          ("40", BAD), (True, BAD), (None, BAD), ([40], BAD), (1e308, BAD), (5e-324, OK)],
    }  # fmt: skip
    for field, cases in values.items():
        for value, status in cases:
            yield f"{field}={json.dumps(value)[:30]}", post_json("/predict", ride(**{field: value})), status
        missing = {k: v for k, v in RIDE.items() if k != field}
        yield f"{field} missing", post_json("/predict", json.dumps(missing)), BAD
    for index in (0, 5, 999):
        rides = [RIDE] * 1000
        rides[index] = RIDE | {"trip_distance": "far"}
        yield f"a bad ride at [{index}] of 1,000", post_json("/predict", json.dumps(rides)), BAD


def invocation_cases() -> Iterator[tuple[str, bytes, int]]:
    columns = ["PULocationID", "DOLocationID", "trip_distance"]
    row = [10, 50, 40]
    for name, payload, status in [
        ("split", {"dataframe_split": {"columns": columns, "data": [row]}}, OK),
        ("records", {"dataframe_records": [RIDE]}, OK), ("instances", {"instances": [RIDE]}, OK),
        ("inputs as columns", {"inputs": {c: [v] for c, v in zip(columns, row, strict=True)}}, OK),
        ("no known key", {"data": [RIDE]}, BAD), ("two keys", {"instances": [RIDE], "inputs": [RIDE]}, BAD),
        ("split without columns", {"dataframe_split": {"data": [row]}}, BAD),
        ("split row too long", {"dataframe_split": {"columns": columns, "data": [row + [1]]}}, BAD),
        ("split row too short", {"dataframe_split": {"columns": columns, "data": [row[:2]]}}, BAD),
        ("split column names as lists", {"dataframe_split": {"columns": [[c] for c in columns], "data": [row]}}, BAD),
        ("split column names as objects", {"dataframe_split": {"columns": [{"c": c} for c in columns], "data": [row]}}, BAD),
        ("split data not a list", {"dataframe_split": {"columns": columns, "data": "x"}}, BAD),
        ("records not a list", {"dataframe_records": RIDE}, BAD), ("instances empty", {"instances": []}, BAD),
        ("inputs columns of unequal length", {"inputs": {"PULocationID": [1, 2], "DOLocationID": [3], "trip_distance": [1]}}, BAD),
        ("params ignored", {"instances": [RIDE], "params": {"x": 1}}, OK), ("a list body", [RIDE], BAD),
        ("nested 1,000 deep", None, BAD),
    ]:  # fmt: skip
        body = ("[" * 1000 + "]" * 1000) if payload is None else json.dumps(payload)
        yield f"/invocations {name}", post_json("/invocations", body), status
    for name, text, status in [
        ("csv", "PULocationID,DOLocationID,trip_distance\n10,50,40\n", OK),
        ("csv empty", "", BAD), ("csv header only", "PULocationID,DOLocationID,trip_distance\n", BAD),
        ("csv 1_0", "PULocationID,DOLocationID,trip_distance\n1_0,50,40\n", BAD),
        ("csv Arabic-Indic digits", "PULocationID,DOLocationID,trip_distance\n\u0661\u0660,50,40\n", BAD),
        ("csv nan", "PULocationID,DOLocationID,trip_distance\n10,50,nan\n", BAD),
        ("csv duplicate column", "PULocationID,PULocationID,DOLocationID,trip_distance\n1,10,50,40\n", BAD),
        ("csv extra value", "PULocationID,DOLocationID,trip_distance\n10,50,40,7\n", BAD),
        ("csv unbalanced quote", 'PULocationID,DOLocationID,trip_distance\n"10,50,40\n', BAD),
        ("csv missing column", "PULocationID,DOLocationID\n10,50\n", BAD),
    ]:  # fmt: skip
        yield f"/invocations {name}", post_json("/invocations", text.encode(), "text/csv"), status
    yield "/invocations xml", post_json("/invocations", "<ride/>", "application/xml"), MEDIA


def endpoint_cases() -> Iterator[tuple[str, bytes, int]]:
    for path in ("/health", "/ready", "/model", "/metrics", "/docs", "/openapi.json", "/ping", "/version"):
        yield f"GET {path}", http("GET", path), OK
        yield f"HEAD {path}", http("HEAD", path), OK


def cases() -> Iterator[tuple[str, bytes, int]]:
    for make in (request_line_cases, path_cases, header_cases, body_cases, field_cases, invocation_cases,
                 endpoint_cases):  # fmt: skip
        yield from make()
    # The same rides, in every combination a client might send of valid zones and distances.
    for pickup in (1, 7, 132, 264, 265):
        for dropoff in (1, 50, 236, 265):
            for distance in (0, 0.1, 3.7, 40, 120.5, 499.9):
                yield f"ride {pickup}->{dropoff} {distance} mi", post_json("/predict", ride(
                    PULocationID=pickup, DOLocationID=dropoff, trip_distance=distance)), OK  # fmt: skip


def pieces(raw: bytes) -> list:
    """The request as text pieces; a unit of up to 120 characters repeated 10 times or more is written as a count."""
    text, out, start = raw.decode("latin-1"), [], 0
    for match in re.finditer(r"(.{1,120}?)\1{9,}", text, re.DOTALL):
        unit = match.group(1)
        out += [text[start : match.start()], {"repeat": unit, "times": len(match.group(0)) // len(unit)}]
        start = match.end()
    return [piece for piece in [*out, text[start:]] if piece != ""]


def main() -> None:
    lines = [json.dumps({"name": name, "request": pieces(raw), "status": status}) for name, raw, status in cases()]
    (HERE / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    print(f"{len(lines)} requests written to {HERE / 'corpus.jsonl'}")


if __name__ == "__main__":
    main()
