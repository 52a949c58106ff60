"""Secrets and PII keys: from config or the environment, else made once and kept private."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.contract.config import PiiConfig, load_config
from gateway.contract.errors import ConfigurationError
from gateway.engine.keys import load_secret, pii_keyring
from store.pii import ENV, Keyring
from tests.conftest import Parts, make_contact

NEW_KEY = "k2:" + base64.urlsafe_b64encode(bytes(range(32, 64))).decode()


def test_a_made_secret_is_kept_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "var" / "web.secret"
    first = load_secret(None, path)
    assert load_secret(None, path) == first and len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret("configured", path) == b"configured"
    assert [p.name for p in path.parent.iterdir()] == ["web.secret"]


def test_without_keys_one_pii_key_is_made_once_and_kept(tmp_path: Path) -> None:
    settings = PiiConfig(key_file=tmp_path / "var" / "pii.key")
    first = pii_keyring(settings)
    again = pii_keyring(settings)
    assert first.key_ids == again.key_ids and len(first.key_ids) == 1
    assert again.decrypt(first.encrypt("张三", "citizens.name"), "citizens.name") == "张三"
    assert stat.S_IMODE(settings.key_file.stat().st_mode) == 0o600


def test_configured_keys_win_over_the_key_file(tmp_path: Path) -> None:
    settings = PiiConfig(keys=NEW_KEY, key_file=tmp_path / "pii.key")
    assert pii_keyring(settings).key_ids == ["k2"]
    assert not settings.key_file.exists()


def test_a_damaged_key_file_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "pii.key"
    path.write_text("k1:tooshort")
    with pytest.raises(ConfigurationError, match=r"pii\.key: HOTLINE_PII_KEYS"):
        pii_keyring(PiiConfig(key_file=path))


def test_the_environment_gives_the_keys_and_a_bad_list_names_the_key() -> None:
    config = load_config(None, environ={ENV: NEW_KEY})
    assert config.pii.keys == NEW_KEY
    with pytest.raises(ConfigurationError, match=r"pii\.keys: Value error, HOTLINE_PII_KEYS"):
        load_config(None, environ={ENV: "k1"})


def test_hotline_pii_new_key_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pii", "new-key"]) == 0
    printed = capsys.readouterr().out.strip()
    assert Keyring.parse(printed).key_ids == [printed.partition(":")[0]]


def test_hotline_pii_rotate_says_how_many_rows_it_changed(
    parts: Parts,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    parts.intake.accept_sync(make_contact(1, raw="0791683108"))
    old = os.environ[ENV]
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    monkeypatch.setenv("HOTLINE_CONFIG", "")

    # Without the old key nothing can be read, and the command says which key is missing.
    monkeypatch.setenv(ENV, f"{NEW_KEY},{Keyring.new_key()}")
    assert main(["pii", "rotate"]) == 2
    assert "PII key 'test', which is not in HOTLINE_PII_KEYS" in capsys.readouterr().err

    monkeypatch.setenv(ENV, f"{NEW_KEY},{old}")
    assert main(["pii", "rotate"]) == 0
    assert capsys.readouterr().out == "re-encrypted under key k2: citizens 1, letters 1 row(s)\n"
    assert main(["pii", "rotate"]) == 0
    assert capsys.readouterr().out == "re-encrypted under key k2: citizens 0, letters 0 row(s)\n"
