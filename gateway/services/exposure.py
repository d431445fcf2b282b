"""Messages exposed by a revocation: marked, announced and audited in the same step.

A revoked device (lost or stolen laptop, compromised key) may be in someone else's
hands, and everything still pending that was sealed to its keys can be opened by that
person if the envelope ever reaches them. The gateway no longer serves it to the
revoked key (``device_revoked``), but the sender and the recipient unit must know, at
once, so they can recall, re-send to the unit's other devices and assess the harm.

:func:`expose_revoked` runs inside the transaction that stores the ``revoke_device``
entry (``gateway.services.directory``): the revocation and its exposure notices commit
together or not at all, so no revocation is ever stored without its notices.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import audit_trail as audit
from gateway.db import message_store
from gateway.services.message_content import (
    PENDING_STATES,
    devices_of,
    emit_all,
    message_facts,
)
from keys.protocol.directory import Directory, DirectoryEntry


async def expose_revoked(
    session: AsyncSession, directory: Directory, entries: Sequence[DirectoryEntry], *, now: int
) -> int:
    """Mark pending messages sealed to keys revoked by ``entries``; returns how many.

    ``directory`` is the state after the entries. Each such message gets
    ``exposed_at``, an audit entry ``message_exposed`` and events: ``outbox.exposed`` to
    the sender, ``inbox.exposed`` to every active device of the recipient unit.
    """
    count = 0
    for entry in entries:
        if entry.type != "revoke_device":
            continue
        record = directory.devices[str(entry.body["device"])]
        revoked = [
            str(record.kid(v)) for v, key in record.versions.items() if key.status == "revoked"
        ]
        reason = str(entry.body["reason"])
        for message_id in await message_store.pending_sealed_to(session, revoked, PENDING_STATES):
            row = await message_store.get(session, message_id, for_update=True)
            if row is None:
                continue
            exposed = await message_store.mark_exposed(session, message_id, revoked, now)
            if not exposed:
                continue
            count += 1
            data = {
                "state": row.state,
                "exposed": exposed,
                "reason": reason,
                "directory_seq": entry.seq,
            }
            await audit.record(
                session,
                "message_exposed",
                now=now,
                **message_facts(row),
                exposed=exposed,
                reason=reason,
                directory_seq=entry.seq,
            )
            await emit_all(
                session,
                devices_of([row.sender_kid]),
                kind="outbox.exposed",
                message_id=message_id,
                data=data,
                now=now,
            )
            unit_devices = sorted(
                name
                for name, other in directory.devices.items()
                if other.device.unit == row.recipient_unit and not other.revoked
            )
            await emit_all(
                session,
                unit_devices,
                kind="inbox.exposed",
                message_id=message_id,
                data=data,
                now=now,
            )
    return count
