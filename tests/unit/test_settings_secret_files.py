"""The admin key and the LiveKit secret from files (``CCTV_ADMIN_API_KEY_FILE``,
``LIVEKIT_API_SECRET_FILE``), as Docker and Swarm secrets mount them under ``/run/secrets``.

Errors name the variable and the path, never what the file holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import SettingsError

from orchestrator.config import SECRET_FILE_VARIABLES, Settings

ADMIN = "admin-key-from-a-file-0123456789abcdef"
LIVEKIT = "livekit-secret-from-a-file-0123456789abc"


@pytest.fixture(autouse=True)
def _no_secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for file_variable, (variable, _) in SECRET_FILE_VARIABLES.items():
        monkeypatch.delenv(file_variable, raising=False)
        monkeypatch.delenv(variable, raising=False)


def _secret(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    path.chmod(0o400)
    return path


def test_both_secrets_come_from_their_files_without_the_final_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `echo "$KEY" | docker secret create ...` stores a final newline; it is not the key's.
    admin = _secret(tmp_path, "cctv_admin_api_key", ADMIN + "\n")
    livekit = _secret(tmp_path, "livekit_api_secret", LIVEKIT + "\r\n")
    monkeypatch.setenv("CCTV_ADMIN_API_KEY_FILE", str(admin))
    monkeypatch.setenv("LIVEKIT_API_SECRET_FILE", str(livekit))
    settings = Settings()
    assert settings.admin_api_key is not None
    assert settings.admin_api_key.get_secret_value() == ADMIN
    assert settings.livekit_api_secret.get_secret_value() == LIVEKIT
    assert ADMIN not in repr(settings) and LIVEKIT not in repr(settings)


def test_without_the_file_variables_the_plain_variables_still_apply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CCTV_ADMIN_API_KEY", ADMIN)
    monkeypatch.setenv("LIVEKIT_API_SECRET", LIVEKIT)
    settings = Settings()
    assert settings.admin_api_key is not None
    assert settings.admin_api_key.get_secret_value() == ADMIN
    assert settings.livekit_api_secret.get_secret_value() == LIVEKIT


def test_the_defaults_stay_when_nothing_is_set() -> None:
    settings = Settings()
    assert settings.admin_api_key is None
    assert settings.livekit_api_secret.get_secret_value() == "secret"


@pytest.mark.parametrize("file_variable", sorted(SECRET_FILE_VARIABLES))
def test_a_secret_set_twice_is_refused_without_quoting_either_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_variable: str
) -> None:
    variable = SECRET_FILE_VARIABLES[file_variable][0]
    monkeypatch.setenv(file_variable, str(_secret(tmp_path, "secret", LIVEKIT)))
    monkeypatch.setenv(variable, ADMIN)
    with pytest.raises(SettingsError) as caught:
        Settings()
    message = str(caught.value)
    assert message == f"set {variable} or {file_variable}, not both"
    assert ADMIN not in message and LIVEKIT not in message


def test_a_missing_file_names_its_variable_and_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "absent"
    monkeypatch.setenv("LIVEKIT_API_SECRET_FILE", str(missing))
    with pytest.raises(SettingsError, match=r"LIVEKIT_API_SECRET_FILE: cannot read .*absent: "):
        Settings()


@pytest.mark.parametrize("content", ["", "\n", "\r\n"], ids=["empty", "newline", "crlf"])
def test_an_empty_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    monkeypatch.setenv("CCTV_ADMIN_API_KEY_FILE", str(_secret(tmp_path, "key", content)))
    with pytest.raises(SettingsError, match=r"CCTV_ADMIN_API_KEY_FILE: .*key is empty"):
        Settings()


def test_a_binary_file_is_refused_without_quoting_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "binary"
    path.write_bytes(b"\xff\xfe" + ADMIN.encode())
    monkeypatch.setenv("CCTV_ADMIN_API_KEY_FILE", str(path))
    with pytest.raises(SettingsError) as caught:
        Settings()
    assert str(caught.value) == f"CCTV_ADMIN_API_KEY_FILE: cannot read {path}: not UTF-8 text"
