"""How ``stafett-keys show`` and ``verify`` present the verified directory.

Only public facts are printed: ids, roles, statuses and fingerprints of public keys
(what an admin reads aloud to an officer to confirm an enrolment).
"""

from __future__ import annotations

from typing import Any

from keys.crypto.keypairs import fingerprint
from keys.protocol.checkpoint import Checkpoint
from keys.protocol.directory import Directory


def directory_json(directory: Directory) -> dict[str, Any]:
    return {
        "size": directory.size,
        "head": directory.head.hex(),
        "admins": [
            {"admin": kid, "fingerprint": key.fingerprint()}
            for kid, key in sorted(directory.admins.items())
        ],
        "units": [
            {"unit": u.unit, "kind": u.kind, "name": u.name}
            for u in sorted(directory.units.values(), key=lambda u: u.unit)
        ],
        "devices": [
            {
                "device": name,
                "role": record.role,
                "contact": record.contact,
                "revoked": record.revoked,
                "current_version": record.current_version,
                "min_encryption_version": record.min_encryption_version,
                "versions": [
                    {
                        "kid": str(record.kid(v)),
                        "status": k.status,
                        "signing_fingerprint": k.verify_key.fingerprint(),
                        "encryption_fingerprint": k.encryption_key.fingerprint(),
                    }
                    for v, k in sorted(record.versions.items())
                ],
            }
            for name, record in sorted(directory.devices.items())
        ],
    }


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def directory_text(directory: Directory) -> str:
    data = directory_json(directory)
    lines = [f"directory: {data['size']} entries, head {data['head']}", "", "security admins:"]
    lines += _table(
        [["KID", "FINGERPRINT"]] + [[a["admin"], a["fingerprint"]] for a in data["admins"]]
    )
    lines += ["", "units:"]
    if data["units"]:
        lines += _table(
            [["UNIT", "KIND", "NAME"]] + [[u["unit"], u["kind"], u["name"]] for u in data["units"]]
        )
    else:
        lines.append("(none)")
    lines += ["", "device keys:"]
    rows = [["KID", "ROLE", "CONTACT", "STATUS", "MIN", "SIGNING FPR", "ENCRYPTION FPR"]]
    for device in data["devices"]:
        for v in device["versions"]:
            rows.append(
                [
                    v["kid"],
                    device["role"],
                    "yes" if device["contact"] else "no",
                    v["status"],
                    str(device["min_encryption_version"]),
                    v["signing_fingerprint"],
                    v["encryption_fingerprint"],
                ]
            )
    lines += _table(rows) if len(rows) > 1 else ["(none)"]
    return "\n".join(lines)


def verify_json(directory: Directory, checkpoint: Checkpoint | None) -> dict[str, Any]:
    return {
        "ok": True,
        "size": directory.size,
        "head": directory.head.hex(),
        "head_fingerprint": fingerprint(directory.head),
        "checkpoint": checkpoint.to_json() if checkpoint is not None else None,
    }


def verify_text(directory: Directory, checkpoint: Checkpoint | None) -> str:
    line = f"ok: {directory.size} entries verified from the trust root, head {directory.head.hex()}"
    if checkpoint is None:
        return line + "\nno checkpoint.json: run `stafett-keys checkpoint`"
    return line + f"\ncheckpoint by {checkpoint.signer} at size {checkpoint.size}: consistent"
