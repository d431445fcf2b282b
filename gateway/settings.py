"""One frozen settings object, read once at start-up and passed down.

Sources, later wins: the dataclass defaults, an optional TOML file, ``STAFETT_*``
environment variables (``STAFETT_PORT=9000``, ``STAFETT_DATA_DIR=/var/lib/stafett``).
Unknown keys in the file or unknown ``STAFETT_`` variables are refused, so a typo
(``max_body_byte``) fails loudly instead of silently keeping a default limit.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "STAFETT_"
# Variables with the prefix that belong to other parts (tests, CI, clients), not to us.
# Variables of the other Stafett tools (client, admin CLI, tests) that share the prefix:
# the gateway ignores them instead of refusing to start in a shell that has them set.
_FOREIGN_ENV = frozenset(
    {
        "STAFETT_REQUIRE_POSTGRES",
        "STAFETT_REQUIRE_BROWSER",  # .ci/run: the web inbox's browser tests must run
        "STAFETT_UI_SCREENSHOTS",  # tests/clients/ui: where to save the screenshots
        "STAFETT_CHROMIUM",  # tests/clients/ui: which Chromium binary
        "STAFETT_BRIDGE_CRASH_AT",  # the bridge's own test-mode switch (clients/bridge)
        "STAFETT_BENCH_ENVELOPE_VERSION",  # bench/envelope.py
        "STAFETT_CONFIG",
        "STAFETT_KEYSTORE",
        "STAFETT_PASSPHRASE",
        "STAFETT_HOME",
        "STAFETT_LANG",
        "STAFETT_KDF_COST",
        "STAFETT_KEYS_DIR",
        "STAFETT_GATEWAY_URL",
        "STAFETT_FUZZ_EXAMPLES",  # tests/integration/test_fuzz_openapi.py
        "STAFETT_FUZZ_SECONDS",
    }
)


# Where Settings.test_crash_at may kill an upload (gateway.blobs); "" is off.
TEST_CRASH_POINTS = frozenset({"", "before_commit", "after_commit"})


class SettingsError(ValueError):
    """The configuration file or environment is invalid (the message names the key)."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("stafett-data")
    # None means SQLite in data_dir; PostgreSQL: postgresql+asyncpg://user@host/db
    database_url: str | None = None
    # The database password from a file (a compose/systemd secret), so it is in neither
    # the URL nor the environment (threat: `ps e`, `docker inspect`, a logged setting).
    database_password_file: Path | None = None
    # Loopback by default: TLS and the public face are the proxy's job (deploy/).
    host: str = "127.0.0.1"
    port: int = 8787
    max_body_bytes: int = 64 * 1024 * 1024  # streamed envelopes
    max_json_bytes: int = 256 * 1024  # every buffered (JSON) body
    max_header_bytes: int = 16 * 1024  # sum of all header names and values
    clock_skew_s: int = 300
    rate_limit_per_s: float = 20.0  # per device, token bucket refill
    rate_limit_burst: int = 60
    max_consent_months: int = 12
    max_ttl_s: int = 30 * 86400
    default_ttl_s: int = 14 * 86400
    blob_dir: Path | None = None  # None: data_dir / "blobs"
    # "directory": blob_dir on this host (the single-host default; several instances
    # only with a shared filesystem whose flock works). "postgresql": chunks in the
    # gateway's PostgreSQL database, shared by instances on several hosts.
    blob_store: str = "directory"
    # Directory store on SQLite: an envelope of at most this many bytes is kept in the
    # database,
    # in the transaction that accepts it, instead of a file of its own (one fsync'd
    # commit instead of a file, its directory and four fsyncs; deleted with the row,
    # overwritten by secure_delete). 0: every envelope in a file.
    blob_inline_bytes: int = 64 * 1024
    gateway_key_id: str = "gateway/main/1"
    # The gateway keystore. None: data_dir / "gateway-key.json". Several instances of one
    # gateway may point this at one shared (read-only) file instead of `init --from`.
    gateway_key_file: Path | None = None
    # The gateway key's keystore passphrase; repr=False keeps it out of logs/tracebacks.
    gateway_key_passphrase: str = field(default="", repr=False)
    audit_checkpoint_interval_s: int = 300
    nonce_purge_interval_s: int = 60
    # Push stream (GET /v1/events, helper "push"). The poll finds events committed by
    # another instance on the same PostgreSQL; this instance's own wake at once.
    events_poll_interval_s: float = 1.0
    push_heartbeat_s: float = 30.0  # WebSocket ping; a peer silent for half of it is dropped
    push_queue_size: int = 256  # events buffered per socket (bounds memory per client)
    push_max_sockets_per_device: int = 4  # per instance; more is refused (rate_limited)
    push_send_timeout_s: float = 30.0  # a client that does not read is disconnected
    # Periodic jobs (gateway.jobs.scheduler); 0 disables one job, jobs_enabled=False all.
    jobs_enabled: bool = True
    # Invariant: content lives at most expires + expire_interval_s (the retention promise).
    expire_interval_s: int = 60
    blob_sweep_interval_s: int = 3600
    # Handover deadlines (keys.domain.deadlines). None: the policy shipped with the
    # gateway (gateway/deadlines.toml); a deployment points this at its own file.
    deadline_policy: Path | None = None
    # Invariant: an overdue handover is escalated at most escalation_interval_s late.
    escalation_interval_s: int = 60
    # The unit that recorded a consent is reminded this many days before it ends.
    consent_reminder_days: int = 14
    # Day granularity is enough for a reminder measured in days.
    consent_reminder_interval_s: int = 3600
    # After a message ended, its subject reference and device ids are removed and its
    # consumed events deleted this many days later (gateway.jobs.retention).
    retention_days: int = 30
    # Invariant: nothing is held longer than retention_days + retention_interval_s.
    retention_interval_s: int = 3600
    # Webhooks (gateway.jobs.webhooks). Invariant: a delivery's first try is at most
    # webhook_interval_s after its event; 0 disables delivery on this instance.
    webhook_interval_s: float = 10.0
    webhook_timeout_s: float = 10.0
    # Plain http://127.0.0.1 endpoints (tests, a local relay); https only otherwise.
    webhook_allow_loopback_http: bool = False
    # Settled webhook deliveries (delivered/failed; ids, states, times) are deleted this
    # many days after they settled, by the retention job. At least the longest message
    # lifetime: a delivery row is also what keeps a later event of the same kind about
    # the same message from being notified twice (webhook dedupe).
    webhook_retention_days: int = 30
    # Test mode: cheap keystore KDF parameters. Never set in production.
    insecure_fast_kdf: bool = False
    # Test mode only (refused without insecure_fast_kdf): the gateway SIGKILLs itself at
    # this point of every upload ("before_commit": the upload is on disk, no row yet;
    # "after_commit": the row is committed, the file not yet renamed), so a crash test
    # hits those windows every time. Env: STAFETT_TEST_CRASH_AT.
    test_crash_at: str = ""
    # --- operations (gateway.observability, gateway.transport) ---
    log_format: str = "text"  # "text" | "json" (one JSON object per line)
    log_level: str = "INFO"
    # Who may read /metrics: comma-separated peer addresses/networks (never a forwarded
    # address), and optionally a bearer token (then also required). See observability.
    metrics_allow: str = "127.0.0.1,::1"
    metrics_token: str = field(default="", repr=False)
    # Unauthenticated requests (no or failed signature) per peer address: token bucket.
    unauth_rate_limit_per_s: float = 10.0
    unauth_rate_limit_burst: int = 120
    # Peers whose X-Forwarded-For (last hop) names the client, e.g. the local nginx.
    trusted_proxies: str = ""
    header_timeout_s: float = 10.0  # a request's head must arrive within this
    body_idle_timeout_s: float = 30.0  # no body byte for this long: 408
    body_min_bytes_per_s: int = 1024  # average body rate after the first idle period
    keepalive_timeout_s: float = 75.0
    max_connections: int = 1024  # per instance; more are answered 503 and closed

    def __post_init__(self) -> None:
        for name in (
            "port",
            "max_body_bytes",
            "blob_inline_bytes",
            "max_json_bytes",
            "max_header_bytes",
            "clock_skew_s",
            "rate_limit_burst",
            "max_consent_months",
            "max_ttl_s",
            "default_ttl_s",
            "audit_checkpoint_interval_s",
            "nonce_purge_interval_s",
            "push_queue_size",
            "push_max_sockets_per_device",
            "expire_interval_s",
            "blob_sweep_interval_s",
            "escalation_interval_s",
            "consent_reminder_days",
            "consent_reminder_interval_s",
            "retention_days",
            "retention_interval_s",
            "webhook_retention_days",
            "unauth_rate_limit_burst",
            "body_min_bytes_per_s",
            "max_connections",
        ):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must not be negative")
        if self.webhook_interval_s < 0:
            raise SettingsError("webhook_interval_s must not be negative")
        for name in (
            "events_poll_interval_s",
            "push_heartbeat_s",
            "push_send_timeout_s",
            "webhook_timeout_s",
            "header_timeout_s",
            "body_idle_timeout_s",
            "keepalive_timeout_s",
        ):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{name} must be positive")
        if self.push_queue_size < 1:
            raise SettingsError("push_queue_size must be at least 1")
        if self.webhook_retention_days * 86400 < self.max_ttl_s:
            raise SettingsError("webhook_retention_days must cover max_ttl_s")
        if self.default_ttl_s > self.max_ttl_s:
            raise SettingsError("default_ttl_s must not exceed max_ttl_s")
        if not 0 <= self.port <= 65535:
            raise SettingsError("port must be 0..65535")
        if self.blob_store not in ("directory", "postgresql"):
            raise SettingsError("blob_store must be directory or postgresql")
        if self.blob_store == "postgresql" and not (self.database_url or "").startswith(
            "postgresql"
        ):
            raise SettingsError("blob_store = postgresql needs a PostgreSQL database_url")
        if self.log_format not in ("text", "json"):
            raise SettingsError("log_format must be text or json")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError("log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        if self.database_password_file is not None and not self.database_url:
            raise SettingsError("database_password_file needs database_url (PostgreSQL)")
        if self.test_crash_at not in TEST_CRASH_POINTS:
            raise SettingsError(f"test_crash_at must be one of {sorted(TEST_CRASH_POINTS)}")
        if self.test_crash_at and not self.insecure_fast_kdf:
            # A crash switch must never be live in production by a stray variable.
            raise SettingsError("test_crash_at is only allowed in test mode")

    @property
    def db_url(self) -> str:
        if self.database_url:
            if self.database_password_file is not None:
                return _with_password(self.database_url, self.database_password_file)
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'gateway.sqlite3').resolve()}"

    @property
    def blobs(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.data_dir / "blobs"

    @property
    def gateway_key_path(self) -> Path:
        if self.gateway_key_file is not None:
            return self.gateway_key_file
        return self.data_dir / "gateway-key.json"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(cls, path: Path | str | None, env: Mapping[str, str]) -> Settings:
        """Defaults, then the TOML file at ``path`` (if given), then ``STAFETT_*`` from env."""
        raw: dict[str, Any] = {}
        if path is not None:
            try:
                with Path(path).open("rb") as fh:
                    file_values = tomllib.load(fh)
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise SettingsError(f"cannot read settings file {path}: {exc}") from exc
            section = file_values.get("gateway", file_values)
            if not isinstance(section, dict):
                raise SettingsError("[gateway] must be a table")
            raw.update(section)
        names = {f.name for f in dataclasses.fields(cls)}
        for key, value in env.items():
            if not key.startswith(ENV_PREFIX) or key in _FOREIGN_ENV:
                continue
            name = key[len(ENV_PREFIX) :].lower()
            if name not in names:
                raise SettingsError(f"unknown setting in environment: {key}")
            raw[name] = value
        return cls(**{k: _coerce(k, v) for k, v in raw.items() if _known(k, names)})


def _with_password(url: str, path: Path) -> str:
    """``url`` with the password read from ``path`` (one line; a final newline is not
    part of it). Errors name the setting, never the file's content."""
    try:
        password = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read database_password_file {path}") from exc
    if not password or "\n" in password:
        raise SettingsError("database_password_file must hold one non-empty line")
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise SettingsError("database_url is not a database URL") from exc
    if parsed.password is not None:
        raise SettingsError("database_url already holds a password: drop it from the URL")
    return parsed.set(password=password).render_as_string(hide_password=False)


def _known(key: str, names: set[str]) -> bool:
    if key not in names:
        raise SettingsError(f"unknown setting: {key}")
    return True


_TYPES = {f.name: f.type for f in dataclasses.fields(Settings)}


def _coerce(name: str, value: Any) -> Any:
    kind = str(_TYPES[name])
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "Path":
            return Path(value)
        if kind == "Path | None":
            return None if value in (None, "") else Path(value)
        if kind == "str | None":
            return None if value in (None, "") else str(value)
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name} has an invalid value") from exc
