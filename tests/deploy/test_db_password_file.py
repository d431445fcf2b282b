"""The database password as a file (a compose or systemd secret): read into the URL the
engine gets, never shown by the settings' repr, refused clearly when unusable."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import Settings, SettingsError

URL = "postgresql+asyncpg://stafett@db:5432/stafett"


def _load(tmp_path: Path, content: str | None, url: str = URL) -> Settings:
    secret = tmp_path / "db_password"
    if content is not None:
        secret.write_text(content, encoding="utf-8")
    env = {"STAFETT_DATABASE_URL": url, "STAFETT_DATABASE_PASSWORD_FILE": str(secret)}
    return Settings.load(None, env)


def test_the_password_file_completes_the_url(tmp_path: Path) -> None:
    settings = _load(tmp_path, "s3cr:et/@pw\n")  # as `echo ... > file` leaves it
    assert settings.db_url == "postgresql+asyncpg://stafett:s3cr%3Aet%2F%40pw@db:5432/stafett"
    assert "s3cr" not in repr(settings)
    assert settings.database_url == URL


@pytest.mark.parametrize(
    ("content", "url", "needle"),
    [
        (None, URL, "cannot read database_password_file"),
        ("", URL, "one non-empty line"),
        ("two\nlines\n", URL, "one non-empty line"),
        ("pw", "postgresql+asyncpg://stafett:inline@db/stafett", "already holds a password"),
    ],
)
def test_an_unusable_password_file_is_refused_without_echoing_it(
    tmp_path: Path, content: str | None, url: str, needle: str
) -> None:
    settings = _load(tmp_path, content, url)
    with pytest.raises(SettingsError) as caught:
        _ = settings.db_url
    assert needle in str(caught.value)
    assert "lines" not in str(caught.value)
    assert "inline" not in str(caught.value)


def test_a_password_file_needs_a_database_url(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="needs database_url"):
        Settings.load(None, {"STAFETT_DATABASE_PASSWORD_FILE": str(tmp_path / "x")})
