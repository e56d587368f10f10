"""The configuration file's loader (relaygate/config_file.py): types, unknown keys, tables,
precedence, errors, the world-readable warning, and the key list against the readers."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaygate import config_file
from relaygate.config_file import KEYS, ConfigError, apply, effective, example, load, masked
from relaygate.console.config import ConsoleSettings
from relaygate.metrics.config import metrics_config
from relaygate.online.config import online_settings
from relaygate.safety.config import safety_settings
from relaygate.settings import Settings

SRC = Path(config_file.__file__).parent


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "relaygate.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No relaygate variables while the test runs, and afterwards the environment as it was:
    ``apply()`` writes into ``os.environ`` itself, which monkeypatch does not undo (a file's
    ``console signup = false`` leaked into later tests that way)."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("RELAYGATE_") or name == "SSL_CERT_FILE":
            monkeypatch.delenv(name)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_values_become_the_strings_the_readers_expect(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
max_inflight = 512
envelope = false
log_content = true
breaker_rate = 0.25
header_timeout = 7
envelope_formats = ["openai", "anthropic"]
cors_origins = "https://a.example,https://b.example"
usd_rate = 7.1
database_url = "sqlite:///x.db"

[console]
signup = false
oidc.name = "Corp SSO"

[search]
fetch_timeout = 1.5
""",
    )
    loaded = load(path)
    assert loaded.values == {
        "RELAYGATE_MAX_INFLIGHT": "512",
        "RELAYGATE_ENVELOPE": "0",
        "RELAYGATE_LOG_CONTENT": "1",
        "RELAYGATE_BREAKER_RATE": "0.25",
        "RELAYGATE_HEADER_TIMEOUT": "7",
        "RELAYGATE_ENVELOPE_FORMATS": "openai,anthropic",
        "RELAYGATE_CORS_ORIGINS": "https://a.example,https://b.example",
        "RELAYGATE_USD_RATE": "7.1",
        "RELAYGATE_DATABASE_URL": "sqlite:///x.db",
        "RELAYGATE_CONSOLE_SIGNUP": "0",
        "RELAYGATE_CONSOLE_OIDC_NAME": "Corp SSO",
        "RELAYGATE_SEARCH_FETCH_TIMEOUT": "1.5",
    }
    assert loaded.warnings == [] and loaded.secrets == []


def test_the_readers_see_the_file(tmp_path: Path, clean_env: None) -> None:
    path = write(
        tmp_path,
        'max_inflight = 512\nenvelope = false\nenvelope_formats = ["openai", "gemini"]\n'
        "[console]\nsignup = false\n[safety]\nt2s = true\n",
    )
    apply(load(path))
    s = Settings.from_env()
    assert (s.max_inflight, s.envelope, s.envelope_formats) == (512, False, ("openai", "gemini"))
    assert ConsoleSettings.from_env().signup is False
    assert safety_settings().t2s is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_inflight = true", "key 'max_inflight' must be an integer, not a boolean"),
        ("max_inflight = 1.5", "key 'max_inflight' must be an integer, not a float"),
        ('max_inflight = "512"', "key 'max_inflight' must be an integer, not a string"),
        ("envelope = 1", "key 'envelope' must be true or false, not an integer"),
        ('envelope = "yes"', "key 'envelope' must be true or false, not a string"),
        ("header_timeout = true", "key 'header_timeout' must be a number, not a boolean"),
        ("header_timeout = inf", "key 'header_timeout' must be a finite number"),
        ("database_url = 5", "key 'database_url' must be a string, not an integer"),
        ('log_level = ["INFO"]', "key 'log_level' must be a string, not an array"),
        ("cors_origins = [1, 2]", "key 'cors_origins' must be an array of strings"),
        ('cors_origins = ["a,b"]', "key 'cors_origins' an item of the array must not contain"),
        ("data_dir = 2024-01-01", "key 'data_dir' must be a string, not a date or time"),
        ("[max_inflight]\nx = 1", "key 'max_inflight' must be an integer, not a table"),
        ('secret_key = "a\\u0000b"', "key 'secret_key' must not contain a NUL character"),
    ],
)
def test_a_wrong_type_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value).startswith(f"configuration file {path}: ")
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_inflights = 5", "unknown key 'max_inflights'; did you mean 'max_inflight'?"),
        (
            "[console]\nsingup = true",
            "unknown key 'console.singup'; did you mean 'console_signup'?",
        ),
        (
            "RELAYGATE_MAX_INFLIGHT = 5",
            "unknown key 'RELAYGATE_MAX_INFLIGHT'; did you mean 'max_inflight'? (keys are lower",
        ),
        ("MAX_INFLIGHT = 5", "did you mean 'max_inflight'?"),
        ("zzzz = 1", "unknown key 'zzzz'"),
        ("[nothing]\na = 1", "unknown table 'nothing'"),
        ("workers = 2", "key 'workers' is not a file setting: the number of workers is"),
        (
            "console_signup = true\n[console]\nsignup = false",
            "key 'console.signup' sets 'console_signup' again (first as 'console_signup')",
        ),
    ],
)
def test_an_unknown_key_is_named_with_a_suggestion(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)
    if "zzzz" in text:
        assert "did you mean" not in str(err.value)


def test_the_environment_beats_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'max_inflight = 512\nlog_level = "DEBUG"\ncors_origins = ["x"]\n')
    loaded = load(path)
    env = {"RELAYGATE_MAX_INFLIGHT": "7", "RELAYGATE_CORS_ORIGINS": ""}  # set, even empty
    applied = apply(loaded, env)
    assert applied == ["RELAYGATE_LOG_LEVEL"]
    assert env == {
        "RELAYGATE_MAX_INFLIGHT": "7",
        "RELAYGATE_CORS_ORIGINS": "",
        "RELAYGATE_LOG_LEVEL": "DEBUG",
    }
    rows = {key.name: (value, source) for key, value, source in effective(loaded, env)}
    assert rows["max_inflight"] == ("7", "env")
    assert rows["log_level"] == ("DEBUG", "env")  # apply() put it there
    rows = {
        key.name: (value, source)
        for key, value, source in effective(loaded, {"RELAYGATE_MAX_INFLIGHT": "7"})
    }
    assert rows["max_inflight"] == ("7", "env")
    assert rows["log_level"] == ("DEBUG", "file")
    assert rows["read_timeout"] == ("300.0", "default")
    assert "key_prefix" not in rows  # the older name has no default of its own


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("max_inflight = \n", "(at line 1, column 16)"),
        ("a = 1\n[console\nsignup = true\n", "(at line 2, column 9)"),
        ("max_inflight = 1\nmax_inflight = 2\n", "(at line 2, column 17)"),
    ],
)
def test_invalid_toml_gives_line_and_column(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value).startswith(f"configuration file {path}: invalid TOML: ")
    assert where in str(err.value)


def test_missing_unreadable_and_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"relaygate\.toml: not found"):
        load(tmp_path / "relaygate.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load(tmp_path)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('log_level = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(bad)
    if os.geteuid() != 0:  # root reads a file of mode 000
        path = write(tmp_path, "max_inflight = 1\n", mode=0o000)
        with pytest.raises(ConfigError, match="cannot be read"):
            load(path)


def test_world_readable_file_with_a_secret_warns(tmp_path: Path) -> None:
    text = 'secret_key = "s3cret"\nredis_url = "redis://:pw@10.0.0.5:6379/0"\n'
    loaded = load(write(tmp_path, text, mode=0o644))
    assert loaded.secrets == ["secret_key", "redis_url"]
    assert len(loaded.warnings) == 1
    assert "readable by every user" in loaded.warnings[0]
    assert "secret_key, redis_url" in loaded.warnings[0] and "chmod 600" in loaded.warnings[0]
    assert load(write(tmp_path, text, mode=0o640)).warnings == []  # group only: no warning
    public = 'redis_url = "redis://10.0.0.5:6379/0"\nsecret_key = ""\n'  # nothing secret in it
    assert load(write(tmp_path, public, mode=0o644)).warnings == []


def test_masked() -> None:
    assert masked(KEYS["secret_key"], "s3cret") == "********"
    assert masked(KEYS["secret_key"], "") == ""
    assert (
        masked(KEYS["database_url"], "postgresql://rg:pw@db:5432/rg")
        == "postgresql://rg:********@db:5432/rg"
    )
    assert masked(KEYS["redis_url"], "redis://:pw@h:6379/0") == "redis://:********@h:6379/0"
    assert masked(KEYS["redis_url"], "redis://h:6379/0") == "redis://h:6379/0"
    assert masked(KEYS["log_level"], "INFO") == "INFO"


def _uncommented_example() -> str:
    return "\n".join(
        line[2:] if line.startswith("# ") and " = " in line else line
        for line in example().splitlines()
    )


def test_the_example_holds_every_key_at_its_default(tmp_path: Path) -> None:
    data = tomllib.loads(_uncommented_example())
    assert set(data) == {k.name for k in KEYS.values() if not k.legacy}
    assert "## key_prefix: older name of api_key_prefix" in example()
    loaded = load(write(tmp_path, _uncommented_example()))
    defaults = {key.env: value for key, value, source in effective(None, {})}
    assert loaded.values == defaults


def test_the_defaults_are_the_readers_defaults(tmp_path: Path, clean_env: None) -> None:
    """Every default in the list, put into the environment, reads as an unset variable does:
    the example cannot drift from the readers."""
    before = (
        Settings.from_env(),
        ConsoleSettings.from_env(),
        metrics_config(),
        safety_settings(),
        online_settings(),
    )
    applied = apply(load(write(tmp_path, _uncommented_example())))
    assert len(applied) == len([k for k in KEYS.values() if not k.legacy])
    after = (
        Settings.from_env(),
        ConsoleSettings.from_env(),
        metrics_config(),
        safety_settings(),
        online_settings(),
    )
    assert after == before


def test_every_variable_the_code_reads_is_a_key() -> None:
    """A new RELAYGATE_* reader must add its key to config_file.SECTIONS."""
    read: set[str] = set()
    for path in SRC.rglob("*.py"):  # whole names: not prefixes such as RELAYGATE_CONSOLE_*
        text = path.read_text("utf-8")
        read |= set(re.findall(r"RELAYGATE_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_])", text))
    not_settings = {"RELAYGATE_WORKERS", "RELAYGATE_CONFIG"}  # serve --workers; the file
    missing = {n for n in read - not_settings if n.removeprefix("RELAYGATE_").lower() not in KEYS}
    assert missing == set()
    assert {k.env for k in KEYS.values()} <= read  # no key the code does not read
