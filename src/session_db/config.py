"""Settings, read from the environment or a `.env` file only when the caller asks."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from session_db.errors import ConfigurationError

APP_NAME = "session-db"
SQLITE_FILE_NAME = "session_db.sqlite"

# Plain driver names people paste from other tools, mapped to the async driver we use.
_ASYNC_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


class Settings(BaseSettings):
    """Every setting session_db reads; each comes from `SESSION_DB_<NAME>` or `.env`."""

    model_config = SettingsConfigDict(
        env_prefix="SESSION_DB_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # `SESSION_DB_URL=` (set but empty, as shells and .env templates leave it) is unset.
        env_ignore_empty=True,
    )

    url: SecretStr | None = Field(
        default=None,
        description="Database URL; unset means an embedded SQLite file in data_dir.",
    )
    data_dir: Path | None = Field(
        default=None,
        description="Where the embedded SQLite file lives; unset means the per-user data dir.",
    )
    echo: bool = Field(default=False, description="Log every SQL statement.")
    pool_size: int = Field(default=5, ge=1, description="PostgreSQL connection pool size.")
    max_overflow: int = Field(default=10, ge=0, description="Connections beyond pool_size.")
    pool_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to wait for a pooled connection."
    )
    connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for a new connection."
    )
    sqlite_busy_timeout_ms: int = Field(
        default=30_000, ge=0, description="How long a SQLite writer waits for the lock."
    )
    allow_reset: bool = Field(
        default=False,
        description="Let reset_db() run without confirm=True (it deletes everything).",
    )

    def resolved_data_dir(self) -> Path:
        """Return the folder of the embedded SQLite file."""
        if self.data_dir is not None:
            return self.data_dir.expanduser()
        return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))

    def database_url(self) -> URL:
        """Return the database URL, normalised to an async driver.

        Raises:
            ConfigurationError: The URL cannot be parsed or names an unsupported driver.
                The message never contains the password.
        """
        if self.url is None:
            path = self.resolved_data_dir() / SQLITE_FILE_NAME
            return URL.create("sqlite+aiosqlite", database=str(path))
        return parse_database_url(self.url.get_secret_value())


def parse_database_url(raw: str) -> URL:
    """Parse `raw` into a URL with an async driver (`postgresql://` becomes asyncpg).

    Raises:
        ConfigurationError: The URL is malformed or its driver is not supported. The
            message names the driver but never repeats the URL, which may hold a password.
    """
    try:
        url = make_url(raw.strip())
        _ = url.port  # a non-numeric port only fails when read
    except (ArgumentError, ValueError):
        raise ConfigurationError(
            "SESSION_DB_URL is not a valid database URL "
            "(expected e.g. postgresql+asyncpg://user:password@host:5432/dbname "
            "or sqlite+aiosqlite:///path/to/file.sqlite)"
        ) from None
    driver = _ASYNC_DRIVERS.get(url.drivername)
    if driver is None:
        raise ConfigurationError(
            f"SESSION_DB_URL uses the unsupported driver {url.drivername!r}; "
            "use postgresql+asyncpg:// or sqlite+aiosqlite://"
        )
    return url.set(drivername=driver)


def get_settings() -> Settings:
    """Read the settings now, from the environment and `.env`."""
    return Settings()
