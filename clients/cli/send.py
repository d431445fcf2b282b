"""``stafett send`` (the sender's side; ``status`` and ``recall`` are ``cli_status``).

Before anything is sealed, the consent is checked here as well (the gateway decides
again, authoritatively): the personnummer gives the subject reference, the consents
the gateway lists are verified against their recorders' directory keys, and one that
is active and covers this unit -> recipient unit x category x purpose is chosen. An
explicit ``--consent ID`` skips the local choice and leaves the decision to the
gateway alone (its refusal names the reason); the personnummer is still asked for
(prompt or ``--pnr-stdin``, never argv) and must be the consent's person, so that
naming a consent id never stands in for saying who the message is about. Nothing
leaves the device when no consent covers the send.
"""

from __future__ import annotations

import argparse
import hmac
import time
from pathlib import Path
from typing import Any

from clients.cli import bundle as cli_bundle
from clients.cli.common import Context, sync_with_warnings
from clients.cli.consent import summarise
from clients.cli.render import when
from clients.cli.state import CliFailure
from clients.local.consents import verified_record
from clients.sdk import StafettClient
from clients.sdk.sealing import remove, temp_path

DAY = 86_400


def _read_text(ctx: Context, args: argparse.Namespace) -> bytes | None:
    if not args.text_file:
        return None
    try:
        return Path(args.text_file).read_bytes()
    except OSError:
        raise CliFailure(ctx.texts("file_missing", path=args.text_file)) from None


def _files(ctx: Context, args: argparse.Namespace) -> list[Path]:
    files = [Path(f) for f in args.file or []]
    for path in files:
        if not path.is_file():
            raise CliFailure(ctx.texts("file_missing", path=path))
    return files


def _covers(record: dict[str, Any], sender: str, to: str, category: str, purpose: str) -> bool:
    now = int(time.time())
    return (
        {"from": sender, "to": to} in record.get("pairs", [])
        and category in record.get("categories", [])
        and purpose in record.get("purposes", [])
        and int(record.get("valid_from", 0)) <= now < int(record.get("valid_until") or 0)
    )


async def _choose_consent(
    ctx: Context, client: StafettClient, args: argparse.Namespace
) -> tuple[str, str]:
    """``(consent_id, subject_ref)`` for this send."""
    directory = await client.directory()
    if args.consent:
        consent = await client.get_consent(args.consent)
        record = verified_record(directory, consent)
        if record is None:
            raise CliFailure(
                ctx.texts("crypto_refused", code="consent_signature_invalid", detail=args.consent)
            )
        subject_ref = ctx.subject_ref(client)
        # Constant time: the pseudonym is the one person-derived value compared here.
        if not hmac.compare_digest(subject_ref, str(record["subject_ref"])):
            raise CliFailure(ctx.texts("consent_other_person", consent_id=args.consent))
        return args.consent, subject_ref
    subject_ref = ctx.subject_ref(client)
    consents = await client.list_consents(subject_ref)
    summary = []
    for consent in consents:
        record = verified_record(directory, consent)
        summary.append(summarise(consent, record))
        if (
            record is not None
            and consent.get("status") == "active"
            and _covers(record, client.unit, args.to, args.category, args.purpose)
        ):
            return str(consent["consent_id"]), subject_ref
    message = ctx.texts(
        "no_consent_covers",
        from_unit=client.unit,
        to_unit=args.to,
        category=args.category,
        purpose=args.purpose,
    )
    if summary:
        listed = "; ".join(
            f"{s['consent_id']} ({s['status']}: {', '.join(s['pairs'])} / "
            f"{', '.join(s['categories'])} / {', '.join(s['purposes'])})"
            for s in summary
        )
        message += " " + ctx.texts("consent_exists_but", summary=listed)
    raise CliFailure(message)


async def cmd_send(ctx: Context, args: argparse.Namespace) -> None:
    text, files = _read_text(ctx, args), _files(ctx, args)
    if text is None and not files:
        raise CliFailure(ctx.texts("send_nothing"), status=2)
    ctx.check_terms("categories", "what_category", [args.category])
    ctx.check_terms("purposes", "what_purpose", [args.purpose])
    home = ctx.home
    async with ctx.client() as client:
        directory, _ = await sync_with_warnings(ctx, client)
        ctx.check_unit(directory, args.to)
        devices = None
        if args.officer:
            devices = [f"{args.to}/{name}" for name in args.officer]
            active = sorted(
                name
                for name, rec in directory.devices.items()
                if rec.device.unit == args.to and not rec.revoked
            )
            for device in devices:
                if device not in active:
                    raise CliFailure(
                        ctx.texts(
                            "unknown_officer",
                            device=device,
                            unit=args.to,
                            known=", ".join(active) or ctx.texts("none"),
                        ),
                        status=2,
                    )
        consent_id, subject_ref = await _choose_consent(ctx, client, args)
        # The plaintext bundle lives 0600 in the state directory only while it is sealed.
        bundle = temp_path(home.root, ".bundle")
        progress = ctx.out.progress("↑")
        try:
            cli_bundle.pack(bundle, text, files)
            result = await client.send(
                recipient_unit=args.to,
                consent_id=consent_id,
                subject_ref=subject_ref,
                category=args.category,
                purpose=args.purpose,
                body=bundle,
                expires_in_s=int(args.days) * DAY,
                devices=devices,
                in_reply_to=args.reply_to,
                progress=progress,
            )
        finally:
            progress.finish()
            remove(bundle)
    home.save_keystore_if_changed()
    home.save_record(
        "sent",
        result.message_id,
        {
            "message_id": result.message_id,
            "header_hash": result.header_hash,
            "recipients": list(result.recipients),
            "to": args.to,
            "consent_id": consent_id,
            "category": args.category,
            "purpose": args.purpose,
            "sent_at": int(time.time()),
            "expires": result.expires,
            "due": result.due,
        },
    )
    key = "send_replayed" if result.replayed else "send_done"
    ctx.out.line(
        ctx.texts(
            key,
            message_id=result.message_id,
            to=args.to,
            n=len(result.recipients),
            expires=when(result.expires),
        )
    )
    if result.requested_expires is not None and result.expires < result.requested_expires:
        # The consent ends before the requested expiry: the gateway capped it there.
        ctx.out.line(
            ctx.texts(
                "send_capped",
                expires=when(result.expires),
                requested=when(result.requested_expires),
            )
        )
    if result.due is not None:
        ctx.out.line(ctx.texts("send_due", due=when(result.due)))
    ctx.out.emit(
        {
            "message_id": result.message_id,
            "consent_id": consent_id,
            "recipients": list(result.recipients),
            "accepted_at": result.accepted_at,
            "expires": result.expires,
            "requested_expires": result.requested_expires,
            "due": result.due,
            "replayed": result.replayed,
            "size": result.size,
        }
    )
