"""One reader of the process environment, one set of rules, and nothing that writes it."""

from __future__ import annotations

import ast
import inspect

import pytest

from tests.conftest import REPO
from web_service import environment
from web_service.environment import env_bool, env_choice, env_float, env_int, env_str, env_tokens, gunicorn_raw_env
from web_service.errors import SettingsError

# What the code of the service is: the packages and Gunicorn's config file.
SOURCES = [*sorted((REPO / "web_service").rglob("*.py")), *sorted((REPO / "web_service_mlflow").rglob("*.py")),
           REPO / "gunicorn.conf.py"]  # fmt: skip
THE_READER = REPO / "web_service" / "environment.py"
# Everything in os that reads or writes the process environment.
ENVIRONMENT_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


# --- the rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"), [("7", 7), (" 7 ", 7), ("007", 7), ("65535", 65535), ("", 3), ("  ", 3)]
)  # fmt: skip
def test_a_whole_number_is_digits_and_blank_is_the_default(raw, value):
    assert env_int({"N": raw}, "N", 3, maximum=65535) == value


@pytest.mark.parametrize("raw", ["abc", "0", "+3", "3_0", "3.0", "-1", "³", "65536", "1e3"])
def test_anything_else_is_refused_naming_the_variable_the_bounds_and_the_value(raw):
    with pytest.raises(SettingsError) as refused:
        env_int({"N": f" {raw} "}, "N", 3, maximum=65535)

    assert refused.value.message == f"N must be a whole number from 1 to 65535, got {raw!r}"


def test_a_lower_bound_alone_says_so():
    assert env_int({"N": "0"}, "N", 3, minimum=0) == 0
    with pytest.raises(SettingsError, match=r"^N must be a whole number >= 1, got '0'$"):
        env_int({"N": "0"}, "N", 3)


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("YES", True), (" 1 ", True), ("False", False),
                                            ("no", False), ("0", False), ("", True)])  # fmt: skip
def test_a_switch_is_true_or_false_one_or_zero_yes_or_no_in_any_case(raw, value):
    assert env_bool({"S": raw}, "S", True) is value


def test_a_switch_that_is_neither_is_refused_as_given():
    with pytest.raises(SettingsError) as refused:
        env_bool({"S": " Maybe "}, "S", True)

    assert refused.value.message == "S must be true or false, got 'Maybe'"


def test_a_choice_is_one_of_its_words_in_any_case():
    assert env_choice({"C": " WARNING "}, "C", "info", ("info", "warning")) == "warning"
    assert env_choice({}, "C", "info", ("info", "warning")) == "info"
    with pytest.raises(SettingsError, match=r"^C must be one of info, warning, got 'loud'$"):
        env_choice({"C": "loud"}, "C", "info", ("info", "warning"))


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "soon"])
def test_a_number_is_finite_and_above_its_minimum(raw):
    assert env_float({"F": "0.5"}, "F", 1.0) == 0.5
    with pytest.raises(SettingsError, match=rf"^F must be a number above 0, got '{raw}'$"):
        env_float({"F": raw}, "F", 1.0)


def test_a_string_is_stripped_and_blank_is_unset():
    assert env_str({"S": "  x  "}, "S") == "x"
    assert env_str({"S": " "}, "S") is None
    assert env_str({}, "S") is None


def test_tokens_are_comma_separated_and_a_value_of_separators_is_refused():
    assert env_tokens({"T": " a, b ,"}, "T") == ("a", "b")
    assert env_tokens({"T": " "}, "T") == ()
    with pytest.raises(SettingsError, match="^T holds no token, got ' , '"):
        env_tokens({"T": " , "}, "T")


def test_read_is_a_copy_of_the_environment_now(monkeypatch):
    monkeypatch.setenv("RIDE_DURATION_TEST_VARIABLE", "1")
    copy = environment.read()
    copy["RIDE_DURATION_TEST_VARIABLE"] = "2"

    assert environment.read()["RIDE_DURATION_TEST_VARIABLE"] == "1"


# --- nobody else reads it, and nobody writes it ------------------------------------------------


def environment_uses(text: str) -> list[tuple[int, str]]:
    """(line, code) of each place `text` touches the process environment through os: os.environ, os.getenv, ..."""
    tree = ast.parse(text)
    modules = {"os", "posix"} | {alias.asname for node in ast.walk(tree) if isinstance(node, ast.Import)
                                 for alias in node.names if alias.name == "os" and alias.asname}  # fmt: skip
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in {"os", "posix"}:
            if names := sorted({alias.name for alias in node.names} & ENVIRONMENT_NAMES):
                found.add((node.lineno, f"from {node.module} import {', '.join(names)}"))
        elif (isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT_NAMES
              and isinstance(node.value, ast.Name) and node.value.id in modules):  # fmt: skip
            found.add((node.lineno, ast.unparse(node)))
    return sorted(found)


def test_the_scan_finds_every_way_to_the_environment_and_not_a_wsgi_environ():
    text = (
        "import os\nimport os as system\nfrom os import getenv\nx = os.environ.get('A')\nos.environ['B'] = '1'\n"
        "system.putenv('C', '1')\nos.environ.setdefault('D', '1')\nenviron['E'] = 1\nrequest.environ.get('F')\n"
    )

    assert environment_uses(text) == [(3, "from os import getenv"), (4, "os.environ"), (5, "os.environ"),
                                      (6, "system.putenv"), (7, "os.environ")]  # fmt: skip


def test_only_web_service_environment_reads_the_process_environment():
    found = [f"{path.relative_to(REPO)}:{line}: {code}" for path in SOURCES if path != THE_READER
             for line, code in environment_uses(path.read_text())]  # fmt: skip

    assert not found, "read it through web_service.environment.read() and pass a Mapping down:\n" + "\n".join(found)


def test_the_reader_reads_the_environment_in_read_alone_and_writes_nothing():
    lines, first = inspect.getsourcelines(environment.read)
    uses = environment_uses(THE_READER.read_text())

    assert [code for _, code in uses] == ["os.environ"]
    assert first <= uses[0][0] < first + len(lines)
    assert "return dict(os.environ)" in inspect.getsource(environment.read)


# --- the one value handed on through an environment: prometheus-client's folder ----------------


def test_gunicorn_raw_env_hands_on_only_what_the_environment_leaves_unset():
    wanted = {"PROMETHEUS_MULTIPROC_DIR": "/dev/shm/x"}

    assert gunicorn_raw_env({}, wanted) == ["PROMETHEUS_MULTIPROC_DIR=/dev/shm/x"]
    assert gunicorn_raw_env({"PROMETHEUS_MULTIPROC_DIR": " "}, wanted) == ["PROMETHEUS_MULTIPROC_DIR=/dev/shm/x"]
    assert gunicorn_raw_env({"PROMETHEUS_MULTIPROC_DIR": "/mine"}, wanted) == []


def test_prometheus_client_value_class_still_takes_no_folder_argument():
    # When it grows one, pass the folder to it (web_service.metrics) and drop gunicorn.conf.py's raw_env.
    from prometheus_client import values

    assert list(inspect.signature(values.MultiProcessValue).parameters) == ["process_identifier"]


def test_prometheus_client_value_class_still_finds_its_folder_in_the_environment(tmp_path, monkeypatch):
    # When it stops, raw_env no longer reaches it: the workers' counts would go nowhere /metrics looks.
    from prometheus_client import values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    value = values.MultiProcessValue(process_identifier=lambda: 4242)("counter", "c", "c_total", (), (), "help")
    value.inc(1)

    type(value).close_all_files()

    assert [path.name for path in tmp_path.iterdir()] == ["counter_4242.db"]
