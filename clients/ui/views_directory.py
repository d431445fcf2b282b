"""The verified directory: units, officers, fingerprints, and key changes made loud.

A changed key of a device this computer knew is the way a substituted key would look
(threat: a gateway or a rogue admin slipping in a key the officer then seals cases to),
so each change is shown at the top, saying what changed and which admin entry signed it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from clients.cli.common import describe_change, describe_own
from clients.ui.pages import VAULT, problem_text, render, texts

routes = web.RouteTableDef()


@routes.get("/directory")
async def directory_page(request: web.Request) -> web.StreamResponse:
    vault = request.app[VAULT]
    t = texts(request)
    try:
        directory = await vault.sync()
    except Exception as exc:
        return render(request, "directory.html", {"error": problem_text(t, exc), "units": []})
    units: list[dict[str, Any]] = []
    for code, unit in sorted(directory.units.items(), key=lambda kv: kv[1].name.lower()):
        devices = []
        for record in sorted(directory.devices.values(), key=lambda r: str(r.device)):
            if record.device.unit != code:
                continue
            current = record.versions.get(record.current_version)
            devices.append(
                {
                    "device": str(record.device),
                    "role": record.role,
                    "version": record.current_version,
                    "revoked": record.revoked,
                    "signing": current.verify_key.fingerprint() if current else "—",
                    "encryption": current.encryption_key.fingerprint() if current else "—",
                }
            )
        units.append({"code": code, "name": unit.name, "kind": unit.kind, "devices": devices})
    device = vault.client.kid.device
    warnings = [describe_change(t, c) for c in vault.changes]
    warnings += [describe_own(t, device, n) for n in vault.own]
    context = {"units": units, "size": directory.size, "warnings": warnings, "error": None}
    return render(request, "directory.html", context)
