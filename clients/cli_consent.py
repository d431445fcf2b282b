"""``stafett consent record | list | withdraw``.

The personnummer is asked for (not echoed) or read from stdin, validated and turned
into the subject reference here; only the reference goes to the gateway. A written
consent's signed form stays in the case file: only its BLAKE2b-256 checksum is sent
(``evidence_hash``), so the recorder can later prove which form it was.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

from keys.consent_record import verify_consent_record
from keys.directory import Directory
from keys.errors import KeysError
from keys.keypairs import KeyId

from .cli_common import Context
from .cli_render import day, table
from .cli_state import CliFailure

DAY = 86_400


def evidence_hash(ctx: Context, path: Path) -> str:
    """BLAKE2b-256 of the file, streamed (a scanned form can be large)."""
    digest = hashlib.blake2b(digest_size=32)
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError:
        raise CliFailure(ctx.texts("file_missing", path=path)) from None
    return digest.hexdigest()


def _pairs(ctx: Context, values: list[str]) -> list[dict[str, str]]:
    pairs = []
    for value in values:
        left, sep, right = value.partition(":")
        if not sep or not left or not right:
            raise CliFailure(ctx.texts("consent_bad_pair", value=value), status=2)
        pairs.append({"from": left.strip(), "to": right.strip()})
    return pairs


def _end(ctx: Context, args: argparse.Namespace, now: int) -> int:
    if args.until:
        try:
            end = datetime.combine(date.fromisoformat(args.until), datetime.max.time())
        except ValueError:
            raise CliFailure(ctx.texts("consent_bad_date", value=args.until), status=2) from None
        return int(end.timestamp())
    if args.days:
        return now + int(args.days) * DAY
    raise CliFailure(ctx.texts("consent_need_end"), status=2)


def _form_fields(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    if args.form == "written":
        if not args.evidence:
            raise CliFailure(ctx.texts("consent_written_needs_evidence"), status=2)
        return {
            "evidence_hash": evidence_hash(ctx, Path(args.evidence)),
            "witness": None,
            "note": None,
        }
    if not args.witness or not args.note:
        raise CliFailure(ctx.texts("consent_oral_needs_witness"), status=2)
    return {"evidence_hash": None, "witness": args.witness, "note": args.note}


async def cmd_record(ctx: Context, args: argparse.Namespace) -> None:
    pairs = _pairs(ctx, args.pair)
    ctx.check_terms("categories", "what_category", args.category)
    ctx.check_terms("purposes", "what_purpose", args.purpose)
    now = int(time.time())
    valid_until = _end(ctx, args, now)
    form = _form_fields(ctx, args)
    guardians = [
        {
            "form": "written",
            "evidence_hash": evidence_hash(ctx, Path(g)),
            "witness": None,
            "note": None,
        }
        for g in args.guardian_evidence or []
    ]
    if args.minor and not guardians:
        raise CliFailure(ctx.texts("consent_minor_needs_guardian"), status=2)
    async with ctx.client() as client:
        directory = await client.directory()
        for pair in pairs:
            ctx.check_unit(directory, pair["from"])
            ctx.check_unit(directory, pair["to"])
        subject_ref = ctx.subject_ref(client)
        fields: dict[str, Any] = {
            "subject_ref": subject_ref,
            "pairs": pairs,
            "categories": list(dict.fromkeys(args.category)),
            "purposes": list(dict.fromkeys(args.purpose)),
            "valid_from": now,
            "valid_until": valid_until,
            "form": args.form,
            **form,
            "obtained_by": str(client.kid.device),
            "obtained_at": now,
            "minor": bool(args.minor),
            "guardians": guardians,
            "covers_processing": True,
        }
        consent_id = await client.record_consent(fields)
    ctx.home.save_keystore_if_changed()
    described = ", ".join(f"{p['from']} -> {p['to']}" for p in pairs)
    ctx.out.line(
        ctx.texts(
            "consent_recorded",
            consent_id=consent_id,
            form=args.form,
            pairs=described,
            until=day(valid_until),
        )
    )
    ctx.out.emit({"consent_id": consent_id, "valid_until": valid_until, "pairs": pairs})


def verified_record(directory: Directory, consent: dict[str, Any]) -> dict[str, Any] | None:
    """The consent's record if its signature verifies with the recorder's directory key.

    Threat: a gateway inventing or editing a consent to make a send look covered; the
    record is signed by the recording officer's device, which the gateway cannot forge.
    """
    record = consent.get("record")
    if not isinstance(record, dict):
        return None
    try:
        verify_consent_record(
            record, directory.signing_key(KeyId.parse(str(record["recorded_by"])))
        )
    except (KeysError, KeyError):
        return None
    return record


def summarise(consent: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
    rec = record or {}
    return {
        "consent_id": consent.get("consent_id"),
        "status": consent.get("status"),
        "verified": record is not None,
        "pairs": [f"{p['from']}->{p['to']}" for p in rec.get("pairs", [])],
        "categories": rec.get("categories", []),
        "purposes": rec.get("purposes", []),
        "valid_until": rec.get("valid_until"),
        "form": rec.get("form"),
        "withdrawn_at": consent.get("withdrawn_at"),
    }


async def cmd_list(ctx: Context, args: argparse.Namespace) -> None:
    async with ctx.client() as client:
        directory = await client.directory()
        subject_ref = ctx.subject_ref(client)
        consents = await client.list_consents(subject_ref)
    ctx.home.save_keystore_if_changed()
    items = [summarise(c, verified_record(directory, c)) for c in consents]
    if not items:
        ctx.out.line(ctx.texts("consent_none"))
    else:
        ctx.out.line(
            table(
                [
                    "ID",
                    ctx.texts("col_status"),
                    "PAIRS",
                    ctx.texts("col_category"),
                    ctx.texts("col_purpose"),
                    "TOM",
                ],
                [
                    [
                        str(i["consent_id"]),
                        str(i["status"]),
                        ", ".join(i["pairs"]),
                        ", ".join(i["categories"]),
                        ", ".join(i["purposes"]),
                        day(i["valid_until"]),
                    ]
                    for i in items
                ],
            )
        )
    ctx.out.emit({"consents": items})


async def cmd_withdraw(ctx: Context, args: argparse.Namespace) -> None:
    ctx.check_terms("withdrawal_reasons", "what_reason", [args.reason])
    async with ctx.client() as client:
        answer = await client.withdraw_consent(args.consent_id, args.reason)
    n = int(answer.get("messages_withdrawn", 0))
    ctx.out.line(ctx.texts("consent_withdrawn", consent_id=args.consent_id, n=n))
    ctx.out.emit(
        {"consent_id": args.consent_id, "status": answer.get("status"), "messages_withdrawn": n}
    )
