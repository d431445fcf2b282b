"""``stafett consent record | list | withdraw``.

The personnummer is asked for (not echoed) or read from stdin, validated and turned
into the subject reference here; only the reference goes to the gateway. The person's
age comes from the number too: under 18 needs a guardian's consent, whatever flags were
given. A written consent's signed form stays in the case file: only its BLAKE2b-256
checksum is sent (``evidence_hash``), so the recorder can later prove which form it
was. An oral consent's witness and note likewise stay here (``consents/<id>.json`` in
the state directory, for the case file); only their salted hash is sent
(``free_text_hash``, keys.crypto.consent_free_text.FreeText).

A withdrawal cannot be undone (pending messages under the consent are destroyed), so
it is confirmed at a terminal, with a reason code from the vocabulary; scripts pass
``--reason`` and ``--yes``.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

from clients.cli.common import Context
from clients.cli.render import day, table
from clients.cli.state import CliFailure
from clients.local import consents as local_consents
from clients.local.consents import verified_record
from keys.crypto.consent_free_text import FreeText
from keys.errors import KeysError

DAY = 86_400


def evidence_hash(ctx: Context, path: Path) -> str:
    """BLAKE2b-256 of the file, streamed (a scanned form can be large)."""
    try:
        with path.open("rb") as handle:
            return local_consents.evidence_hash(handle)
    except OSError:
        raise CliFailure(ctx.texts("file_missing", path=path)) from None


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


def _ask(ctx: Context, key: str, given: str | None) -> str:
    """An option's value, or asked at a terminal (keeps free text out of shell history)."""
    if given is None and sys.stdin.isatty():
        given = input(ctx.texts(key))
    return (given or "").strip()


def _form_fields(ctx: Context, args: argparse.Namespace) -> tuple[dict[str, Any], FreeText | None]:
    """The record's form fields, and an oral consent's free text (which stays here)."""
    if args.form == "written":
        if not args.evidence:
            raise CliFailure(ctx.texts("consent_written_needs_evidence"), status=2)
        return local_consents.written(evidence_hash(ctx, Path(args.evidence))), None
    witness = _ask(ctx, "consent_witness_prompt", args.witness)
    note = _ask(ctx, "consent_note_prompt", args.note)
    try:
        oral = local_consents.oral(witness, note)
    except KeysError as exc:
        raise CliFailure(str(exc), status=2) from None
    if oral is None:
        raise CliFailure(ctx.texts("consent_oral_needs_witness"), status=2)
    return oral


async def cmd_record(ctx: Context, args: argparse.Namespace) -> None:
    pairs = _pairs(ctx, args.pair)
    ctx.check_terms("categories", "what_category", args.category)
    ctx.check_terms("purposes", "what_purpose", args.purpose)
    now = int(time.time())
    valid_until = _end(ctx, args, now)
    form, free_text = _form_fields(ctx, args)
    guardians = [
        {"form": "written", **local_consents.written(evidence_hash(ctx, Path(g)))}
        for g in args.guardian_evidence or []
    ]
    if args.minor and not guardians:
        raise CliFailure(ctx.texts("consent_minor_needs_guardian"), status=2)
    consent_id = str(uuid.uuid4())
    async with ctx.client() as client:
        directory = await client.directory()
        for pair in pairs:
            ctx.check_unit(directory, pair["from"])
            ctx.check_unit(directory, pair["to"])
        subject_ref, age = ctx.subject(client)
        minor = local_consents.is_minor(age, bool(args.minor))
        if minor and not guardians:
            raise CliFailure(ctx.texts("consent_minor_by_pnr", age=age), status=2)
        kept = (
            None
            if free_text is None
            else local_consents.keep_free_text(ctx.home.root, consent_id, free_text)
        )
        fields: dict[str, Any] = {
            "consent_id": consent_id,
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
            "minor": minor,
            "guardians": guardians,
            "covers_processing": True,
        }
        recorded_id = await client.record_consent(fields)
    ctx.home.save_keystore_if_changed()
    if recorded_id != consent_id:
        # The gateway answered with an identical active consent: nothing new exists,
        # so this run's local free text names nothing and goes.
        if kept is not None:
            kept.unlink(missing_ok=True)
        ctx.out.line(ctx.texts("consent_already_recorded", consent_id=recorded_id))
        ctx.out.emit(
            {"consent_id": recorded_id, "existing": True, "valid_until": None, "pairs": pairs}
        )
        return
    if kept is not None:
        ctx.out.line(ctx.texts("consent_free_text_kept", path=kept))
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
    ctx.out.emit(
        {
            "consent_id": consent_id,
            "existing": False,
            "valid_until": valid_until,
            "pairs": pairs,
            "free_text_file": None if kept is None else str(kept),
        }
    )


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


def _withdrawal_reason(ctx: Context, args: argparse.Namespace) -> str:
    """``--reason``, or asked at a terminal from the vocabulary's list of codes."""
    interactive = sys.stdin.isatty()
    if not args.yes and not interactive:
        raise CliFailure(ctx.texts("withdraw_needs_yes"), status=2)
    reason = args.reason
    if reason is None:
        if not interactive:
            raise CliFailure(ctx.texts("withdraw_needs_yes"), status=2)
        allowed = ", ".join(sorted(ctx.vocabulary.groups["withdrawal_reasons"]))
        reason = input(ctx.texts("withdraw_reason_prompt", allowed=allowed)).strip()
    ctx.check_terms("withdrawal_reasons", "what_reason", [reason])
    return str(reason)


def _confirmed(ctx: Context, args: argparse.Namespace, reason: str) -> bool:
    if args.yes:
        return True
    answer = input(ctx.texts("withdraw_confirm", consent_id=args.consent_id, reason=reason))
    return answer.strip().lower() in {"y", "yes", "j", "ja", ctx.texts("yes")}


async def cmd_withdraw(ctx: Context, args: argparse.Namespace) -> None:
    # A withdrawal destroys pending content and cannot be undone: confirmed, with a
    # reason code (free text would be case content at the gateway).
    reason = _withdrawal_reason(ctx, args)
    if not _confirmed(ctx, args, reason):
        ctx.out.line(ctx.texts("withdraw_cancelled"))
        ctx.out.emit({"consent_id": args.consent_id, "status": None, "messages_withdrawn": 0})
        return
    async with ctx.client() as client:
        answer = await client.withdraw_consent(args.consent_id, reason)
    n = int(answer.get("messages_withdrawn", 0))
    ctx.out.line(ctx.texts("consent_withdrawn", consent_id=args.consent_id, n=n))
    ctx.out.emit(
        {"consent_id": args.consent_id, "status": answer.get("status"), "messages_withdrawn": n}
    )
