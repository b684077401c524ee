"""The docs hold together: relative links resolve, and docs/settings.md matches what the code reads."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = [*sorted((REPO / "web_service").rglob("*.py")), *sorted((REPO / "web_service_mlflow").rglob("*.py")),
           REPO / "gunicorn.conf.py"]  # fmt: skip

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)

NAME = r"([A-Z][A-Z0-9_]+)"
# web_service.environment's getters, the one way the code reads a variable (tests/test_environment.py).
GETTERS = r"\benv_(?:int|str|bool|float|choice|tokens)\("
# Reads of one variable named by a literal: env_int(environ, "PORT", ...), environ.get("HOME"), "X" in environ
LITERAL_READS = [
    re.compile(GETTERS + r"\s*[\w.]+(?:\(\))?,\s*\"" + NAME + '"'),  # env_str(read(), "NAME") too
    re.compile(r"\benviron(?:\.get|\.setdefault|\.pop)?\(\s*\"" + NAME + '"'),
    re.compile(r"\benviron\[\s*\"" + NAME + r"\"\s*\]"),
    re.compile(r"\"" + NAME + r"\"\s+(?:not\s+)?in\s+(?:os\.)?environ\b"),
    re.compile(r"\bprofile_setting\(\s*\w+,\s*\"" + NAME + '"'),
]
DEFAULT_ARGUMENT = re.compile(r"\bname: str = \"" + NAME + '"')  # def profile_setting(environ, name="DRIFT_PROFILE")
# A module constant that holds names: X = "NAME", X = ("A", "B"), X = {"A": ..., "B": ...}
CONSTANT = re.compile(r"^([A-Z][A-Z0-9_]*)\s*=\s*([\"({].*)$", re.M)
ROLES = re.compile(r"^ROLES\s*=\s*\(([^)]*)\)", re.M)
ROLE_NAME = re.compile(r"f\"\{role\}_" + NAME + '"')
ENV_READ = re.compile(r"\benviron\b|" + GETTERS)

# Keys of a WSGI request's environ, which the code reads under the same name: not environment variables.
WSGI_KEYS = {"CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING", "HTTP_X_REQUEST_ID", "PATH_INFO", "REQUEST_METHOD"}
# Read by the code, but settings of the system or of other tools, not of this service.
NOT_OURS = {
    "HOME": "only shortens paths to ~ in what /model and the logs show",
    "JAVA_HOME": "batch's Spark engine checks that a Java is there; Spark's own variable",
    "PYSPARK_PYTHON": "batch's Spark engine defaults it to its own interpreter; Spark's own variable",
    "PYSPARK_GATEWAY_PORT": "set by spark-submit; batch reads it to know it was submitted",
}
# Documented in docs/settings.md because users set them, but read by libraries, not by our code: boto3's,
# and MLflow's HTTP client's, whose defaults web_service_mlflow.sources lowers (MLFLOW_CLIENT_DEFAULTS).
READ_BY_LIBRARIES = {"AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                     "MLFLOW_HTTP_REQUEST_TIMEOUT"}  # fmt: skip


def markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation but hyphens dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(heading) for heading in HEADING.findall(FENCE.sub("", path.read_text()))}


def relative_links(path: Path) -> list[str]:
    targets = LINK.findall(FENCE.sub("", path.read_text()))
    return [target for target in targets if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in relative_links(path):
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(REPO)}")
    return broken


def test_every_relative_link_in_the_docs_points_at_a_file_and_heading_that_exist():
    broken = {str(path.relative_to(REPO)): found for path in markdown_files() if (found := broken_links(path))}
    assert not broken, broken


def test_slug_follows_githubs_rule():
    assert slug("Runs made elsewhere: MLflow 1, 2 and 3, older scikit-learn, XGBoost") == (
        "runs-made-elsewhere-mlflow-1-2-and-3-older-scikit-learn-xgboost"
    )
    assert slug("`POST /predict`") == "post-predict"
    assert slug("What is deserialized, and what someone who can write the artifact store can do") == (
        "what-is-deserialized-and-what-someone-who-can-write-the-artifact-store-can-do"
    )


def names_read(text: str) -> set[str]:
    """Environment variables one source file reads, as plain regexes over its text find them."""
    found = {name for pattern in LITERAL_READS for name in pattern.findall(text)}
    found |= set(DEFAULT_ARGUMENT.findall(text))
    if roles := ROLES.search(text):
        found |= {f"{role}_{name}" for role in re.findall(NAME, roles.group(1)) for name in ROLE_NAME.findall(text)}
    lines = text.splitlines()
    for constant, value in CONSTANT.findall(text):
        used = re.compile(rf"\b{constant}\b")
        uses = [i for i, line in enumerate(lines) if used.search(line) and not line.startswith(constant)]
        # A constant of names counts when the environment is read on a line that uses it or the two after (a loop).
        if any(ENV_READ.search("\n".join(lines[i : i + 3])) for i in uses):
            found |= set(re.findall(r"\"" + NAME + '"', value))
    return found - WSGI_KEYS


def code_variables() -> set[str]:
    return set().union(*(names_read(path.read_text()) for path in SOURCES))


def documented_variables() -> set[str]:
    """The variables named in the first column of docs/settings.md's tables."""
    rows = re.findall(r"^\|([^|\n]*)\|", (REPO / "docs" / "settings.md").read_text(), re.M)
    return {name for row in rows for name in re.findall(r"`" + NAME + "`", row)}


def test_the_scan_finds_reads_of_every_kind():
    text = """
ROLES = ("CANARY", "SHADOW")
WATCHED = ("A_VAR", "B_VAR")
LONE = "LONE_VAR"
IDLE = "NOT_READ"
x = env_int(environ, "INT_VAR", 1) or os.environ.get("GET_VAR") or os.environ["ITEM_VAR"]
y = env_bool(ENV, "BOOL_VAR", 1)
level = env_choice(environ, "CHOICE_VAR", "info", LEVELS) or env_str(read(), "NOW_VAR")
uri = env_str(environ, f"{role}_MODEL_URI")
for name in WATCHED:
    environ.get(name)
os.environ.get(LONE)
if "IN_VAR" in os.environ: pass
"""
    assert names_read(text) == {"INT_VAR", "GET_VAR", "ITEM_VAR", "BOOL_VAR", "CHOICE_VAR", "NOW_VAR",
                                "CANARY_MODEL_URI", "SHADOW_MODEL_URI", "A_VAR", "B_VAR", "LONE_VAR",
                                "IN_VAR"}  # fmt: skip


def test_every_variable_the_code_reads_is_documented_in_settings():
    read, documented = code_variables(), documented_variables()
    missing = read - documented - set(NOT_OURS)
    assert not missing, f"read by the code, not in docs/settings.md: {sorted(missing)}; the code reads {sorted(read)}"


def test_every_variable_documented_in_settings_is_read_by_the_code():
    read, documented = code_variables(), documented_variables()
    unread = documented - read - READ_BY_LIBRARIES
    assert not unread, f"in docs/settings.md, read by no code: {sorted(unread)}; the code reads {sorted(read)}"
