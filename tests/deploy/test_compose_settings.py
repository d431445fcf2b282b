"""deploy/compose.yaml beyond the compose-spec schema: every gateway instance has a
/readyz health check, gets the database password as a secret file (not in its URL or
environment), and sets only settings the gateway knows (it refuses unknown ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from gateway.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"


def _services() -> dict[str, Any]:
    doc = YAML(typ="safe").load(COMPOSE.read_text(encoding="utf-8"))
    services = doc["services"]
    assert isinstance(services, dict)
    return services


def test_each_gateway_is_health_checked_and_reads_the_password_from_a_secret(
    tmp_path: Path,
) -> None:
    services = _services()
    gateways = {name: s for name, s in services.items() if name.startswith("gateway-")}
    assert len(gateways) == 2
    for service in gateways.values():
        assert any("/readyz" in part for part in service["healthcheck"]["test"])
        assert "db_password" in service["secrets"]
        env = {k: str(v) for k, v in service["environment"].items()}
        assert env["STAFETT_DATABASE_PASSWORD_FILE"] == "/run/secrets/db_password"
        assert "@" in env["STAFETT_DATABASE_URL"]
        assert ":" not in env["STAFETT_DATABASE_URL"].split("//", 1)[1].split("@")[0]
        settings = Settings.load(None, env)  # unknown settings would raise here
        assert settings.database_password_file == Path("/run/secrets/db_password")
    assert services["db"]["healthcheck"]["test"][1] == "pg_isready"
    proxy_needs = services["proxy"]["depends_on"]
    assert all(proxy_needs[g]["condition"] == "service_healthy" for g in gateways)
