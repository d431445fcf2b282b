"""``stafett inbox | open | ack | watch`` (the recipient's side)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from clients.cli import bundle as cli_bundle
from clients.cli.common import Context, sync_with_warnings
from clients.cli.render import printable, table, when
from clients.cli.state import CliFailure
from clients.sdk import StafettClient
from clients.sdk.leftovers import remove_cli_leftovers
from clients.sdk.results import PushEvent


async def _inbox(client: StafettClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = await client.inbox(after)
        items.extend(m for m in page.get("messages", []) if isinstance(m, dict))
        after = page.get("next")
        if not after:
            return items


async def cmd_inbox(ctx: Context, args: argparse.Namespace) -> None:
    async with ctx.client() as client:
        items = await _inbox(client)
    t = ctx.texts
    if not items:
        ctx.out.line(t("inbox_empty"))
    else:
        rows = [
            [
                str(m.get("message_id")),
                str(m.get("sender")),
                ctx.label("categories", str(m.get("category"))),
                ctx.label("purposes", str(m.get("purpose"))),
                when(m.get("created")),
                when(m.get("due") or m.get("expires")),
            ]
            for m in items
        ]
        ctx.out.line(
            table(
                [
                    t("col_message"),
                    t("col_from"),
                    t("col_category"),
                    t("col_purpose"),
                    t("col_received"),
                    t("col_due"),
                ],
                rows,
            )
        )
        for m in items:
            if m.get("exposed_at") is not None:
                ctx.out.line(t("inbox_exposed", message_id=printable(str(m.get("message_id")))))
    ctx.out.emit({"messages": items})


async def cmd_open(ctx: Context, args: argparse.Namespace) -> None:
    """Verify (directory key, signature, FINAL tag), decrypt, unpack into a new folder.

    The decrypted bundle is written by the SDK only once complete and verified; the
    folder appears by rename only once fully unpacked. A tampered envelope leaves
    neither behind, and leftovers of an earlier, interrupted open are swept first.

    A message this computer opened before (``opened/<id>.json``) is refused unless
    ``--reopen`` is given: an officer must never take an old message for a new one
    (threat: a gateway replaying a genuine envelope). With ``--reopen`` it must be the
    same envelope, and the output says so loudly.
    """
    previous = ctx.home.record("opened", args.message_id)
    previous_hh = _header_hash(previous)
    if previous is not None and not args.reopen:
        raise CliFailure(
            ctx.texts(
                "already_opened",
                message_id=args.message_id,
                when=when(_int(previous.get("opened_at"))),
                path=printable(str(previous.get("path", "?"))),
            )
        )
    out_dir = Path(args.out)
    target, bundle = _targets(ctx, out_dir, args.message_id)
    # Threat: partial plaintext of a crashed earlier open lingering as dot-files.
    swept = remove_cli_leftovers(out_dir)
    if swept:
        ctx.out.warn(ctx.texts("leftovers_removed", n=swept, path=out_dir))
    progress = ctx.out.progress("↓")
    async with ctx.client() as client:
        await sync_with_warnings(ctx, client)
        try:
            opened = await client.fetch(
                args.message_id,
                bundle,
                progress=progress,
                opened_before=previous_hh,
                reopen=bool(args.reopen),
            )
            unpacked = cli_bundle.unpack(bundle, target)
        finally:
            progress.finish()
            cli_bundle.remove(bundle)
        consent_status = "?"
        with contextlib.suppress(Exception):
            consent = await client.get_consent(opened.consent_id)
            consent_status = str(consent.get("status", "?"))
    ctx.home.save_keystore_if_changed()
    now = int(time.time())
    record: dict[str, Any] = {
        **(previous or {}),
        "message_id": args.message_id,
        "header_hash": opened.header_hash,
        "path": str(target),
        "sender": opened.sender,
        "expires": opened.header.expires,
    }
    record.setdefault("opened_at", now)
    if previous is not None:
        record["reopened_at"] = now
    ctx.home.save_record("opened", args.message_id, record)
    if previous is not None:  # also when the old record lacks its hH: say it loudly
        ctx.out.warn(
            ctx.texts(
                "reopened",
                message_id=args.message_id,
                when=when(_int(previous.get("opened_at"))),
            )
        )
        if previous.get("acked_at"):
            ctx.out.warn(ctx.texts("reopened_after_ack", when=when(_int(previous["acked_at"]))))
    t = ctx.texts
    if consent_status != "active":
        ctx.out.warn(t("consent_not_active", consent_id=opened.consent_id, status=consent_status))
    files = ([cli_bundle.TEXT_NAME] if unpacked.text else []) + [
        f"{cli_bundle.FILES_DIR}/{f}" for f in unpacked.files
    ]
    ctx.out.line(t("opened", message_id=args.message_id, path=target))
    ctx.out.line(t("opened_sender", sender=opened.sender, fingerprint=opened.sender_fingerprint))
    ctx.out.line(
        t(
            "opened_what",
            category=ctx.label("categories", opened.category),
            purpose=ctx.label("purposes", opened.purpose),
        )
    )
    ctx.out.line(t("opened_consent", consent_id=opened.consent_id, status=consent_status))
    ctx.out.line(t("opened_files", files=", ".join(files) or t("none")))
    ctx.out.line(t("opened_ack_hint", message_id=args.message_id))
    ctx.out.emit(
        {
            "message_id": args.message_id,
            "path": str(target),
            "sender": opened.sender,
            "sender_fingerprint": opened.sender_fingerprint,
            "category": opened.category,
            "purpose": opened.purpose,
            "consent_id": opened.consent_id,
            "consent_status": consent_status,
            "in_reply_to": opened.header.in_reply_to,
            "reopened": previous is not None,
            "text": unpacked.text,
            "files": list(unpacked.files),
        }
    )


def _header_hash(record: dict[str, Any] | None) -> str | None:
    value = None if record is None else record.get("header_hash")
    return value if isinstance(value, str) else None


def _targets(ctx: Context, out_dir: Path, message_id: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / message_id
    if target.exists():
        raise CliFailure(ctx.texts("target_exists", path=target))
    return target, out_dir / f".{message_id}.bundle"


async def cmd_ack(ctx: Context, args: argparse.Namespace) -> None:
    opened = ctx.home.record("opened", args.message_id)
    if opened is None:
        raise CliFailure(ctx.texts("not_opened", message_id=args.message_id))
    if args.reject:
        ctx.check_terms("rejection_reasons", "what_reason", [args.reject])
    status, reason = ("rejected", args.reject) if args.reject else ("accepted", None)
    async with ctx.client() as client:
        answer = await client.ack(
            args.message_id, status, reason, header_hash=str(opened["header_hash"])
        )
    # Remembered so that a later re-open of this message says it was handed over.
    ctx.home.save_record(
        "opened", args.message_id, {**opened, "acked_at": int(time.time()), "ack": status}
    )
    key = "rejected" if args.reject else "acked"
    ctx.out.line(
        ctx.texts(
            key,
            message_id=args.message_id,
            reason=ctx.label("rejection_reasons", args.reject or ""),
        )
    )
    ctx.out.emit(
        {
            "message_id": args.message_id,
            "state": answer.get("state"),
            "handed_over_at": answer.get("handed_over_at"),
        }
    )


# Which vocabulary group names the reason an event carries. A rejection's reason is a
# rejection code (signed by the recipient), a withdrawal's a withdrawal code; the
# gateway's own ending reasons (``not_collected``, ``consent_ended``) have texts
# (``reason_<code>``); anything else is shown as the code itself.
_REASON_GROUPS = {
    "outbox.rejected": "rejection_reasons",
    "outbox.withdrawn": "withdrawal_reasons",
}


def reason_label(ctx: Context, reason: str, group: str | None) -> str:
    """A reason code in words: the gateway's own endings first, then the vocabulary."""
    own = ctx.texts(f"reason_{reason}")
    if own != f"reason_{reason}":
        return own
    return ctx.label(group, reason) if group is not None else reason


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def describe_event(ctx: Context, event: PushEvent) -> str:
    """One readable line per event, for every kind the gateway emits (texts.py
    ``event_<kind>``); an unknown kind still gets a generic line, never a failure.

    Event data is the gateway's word: strings are shown escaped (threat: terminal
    control sequences in a field), and only ids, unit codes and vocabulary codes are
    interpolated (the gateway never puts content into events).
    """
    data = event.data
    reason = data.get("reason")
    group = _REASON_GROUPS.get(event.kind)
    reason_text = reason_label(ctx, str(reason), group) if reason else "-"
    role = data.get("role")
    values = {
        "message_id": event.message_id or "-",
        "kind": event.kind,
        "state": ctx.texts(f"state_{data.get('state')}"),
        "reason": reason_text,
        "due": when(_int(data.get("due"))),
        "sender_unit": str(data.get("sender_unit") or "-"),
        "recipient_unit": str(data.get("recipient_unit") or "-"),
        "role": ctx.texts(f"role_{role}") if role else "-",
        "consent_id": str(data.get("consent_id") or "-"),
        "until": when(_int(data.get("valid_until"))),
        "days_left": str(_int(data.get("days_left")) or 0),
    }
    text = ctx.texts(f"event_{event.kind}", **values)
    if text == f"event_{event.kind}":
        text = ctx.texts("event_other", **values)
    return printable(f"[{when(event.created)}] {text}")


async def cmd_watch(ctx: Context, args: argparse.Namespace) -> None:
    """Live events over the push stream; resumes after the last event shown."""
    after = ctx.home.cursor() if args.after is None else int(args.after)
    kinds = set(args.kind or [])
    seen = 0
    async with ctx.client() as client:
        ctx.out.line(ctx.texts("watch_start", device=client.kid.device))

        async def consume() -> None:
            nonlocal seen
            async for event in client.events(after, reconnect_delay_s=1.0):
                ctx.home.save_cursor(event.seq)
                if kinds and event.kind not in kinds:
                    continue
                ctx.out.line(describe_event(ctx, event))
                ctx.out.emit(
                    {
                        "seq": event.seq,
                        "kind": event.kind,
                        "message_id": event.message_id,
                        "created": event.created,
                        "data": event.data,
                    }
                )
                seen += 1
                if args.count and seen >= args.count:
                    return

        try:
            await asyncio.wait_for(consume(), timeout=args.timeout or None)
        except TimeoutError:
            ctx.out.line(ctx.texts("watch_timeout", seconds=args.timeout))
            if args.count and seen < args.count:
                raise CliFailure(ctx.texts("watch_timeout", seconds=args.timeout)) from None
