"""Every refusal of a send, each with its own code, and nothing stored — on both stores."""

from __future__ import annotations

import json

import pytest

from keys.crypto.keypairs import DeviceKeyPair, KeyId
from tests.support.factories import DAY, OTHER_SUBJECT
from tests.support.gateway import assert_problem, blob_files
from tests.support.messages import (
    ANNA,
    BERTIL,
    BO,
    LAS,
    add_las_unit,
    audit_events,
    count_messages,
    header_for,
    header_json,
    new_id,
    now,
    record_consent,
    resign_with_header,
    seal_envelope,
    send,
    signed_consent,
    store_consent_as_of,
)


async def _store_past_consent(gateway) -> str:
    """A consent recorded months ago that has since run out (the API refuses to record
    an already-ended consent, so it is stored as it would have been back then)."""
    t = now() - 200 * DAY
    return await store_consent_as_of(
        gateway,
        t,
        ["so-nordost", "sav"],
        pairs=[{"from": "so-nordost", "to": "sav"}],
        valid_from=t,
        valid_until=t + 90 * DAY,
        obtained_at=t - 60,
        created=t,
    )


@pytest.mark.asyncio
async def test_every_send_refusal_has_its_code_and_stores_nothing(gateway) -> None:
    await add_las_unit(gateway)
    one_way = [{"from": "so-nordost", "to": "sav"}]
    consent = (await record_consent(gateway, pairs=one_way, categories=["case_transfer"]))[
        "consent_id"
    ]
    later = (await record_consent(gateway, pairs=one_way, valid_from=now() + DAY))["consent_id"]
    withdrawn = (await record_consent(gateway, pairs=one_way))["consent_id"]
    reply = await gateway.client(BO).post(
        f"/v1/consents/{withdrawn}/withdraw", {"reason": "subject_withdrew"}
    )
    assert reply.status == 200
    foreign = (
        await record_consent(
            gateway, recorded_by=BO, obtained_by="sav/bo", pairs=[{"from": "sav", "to": LAS}]
        )
    )["consent_id"]
    expired = await _store_past_consent(gateway)
    ghost = DeviceKeyPair.generate(KeyId.parse("sav/ghost/1"))
    stranger = DeviceKeyPair.generate(KeyId.parse("so-hisingen/eva/1"))

    def sealed(**changes):
        header = header_for(gateway, consent_id=changes.pop("consent_id", consent), **changes)
        return header, seal_envelope(gateway, header)

    async def refused(status: int, code: str, header, envelope, *, kid=None, path_id=None):
        reply = await send(
            gateway, kid or str(header.sender), path_id or header.message_id, envelope
        )
        assert_problem(reply, status, code)

    # Consent decisions (deny by default).
    await refused(403, "consent_subject_mismatch", *sealed(subject_ref=OTHER_SUBJECT))
    await refused(403, "consent_direction_not_covered", *sealed(sender=BO, recipients=(ANNA,)))
    await refused(403, "consent_category_not_covered", *sealed(category="threat_assessment"))
    await refused(403, "consent_purpose_not_covered", *sealed(purpose="advice"))
    await refused(403, "consent_not_yet_valid", *sealed(consent_id=later))
    await refused(403, "consent_expired", *sealed(consent_id=expired))
    await refused(403, "consent_withdrawn", *sealed(consent_id=withdrawn))
    await refused(403, "consent_unknown", *sealed(consent_id=new_id()))
    await refused(403, "consent_unknown", *sealed(consent_id=foreign))  # not a party

    # Who sends, and under which id.
    header, envelope = sealed()
    await refused(403, "sender_mismatch", header, envelope, kid=BERTIL)
    await refused(400, "message_id_mismatch", header, envelope, path_id=new_id())

    # Recipients.
    header = header_for(gateway, consent_id=consent, recipients=("sav/ghost/1",))
    await refused(
        422,
        "recipient_unknown",
        header,
        seal_envelope(gateway, header, recipient_keys=[ghost.public()]),
    )
    header = header_for(gateway, consent_id=consent, recipients=("so-hisingen/eva/1",))
    await refused(
        422,
        "recipient_unit_unknown",
        header,
        seal_envelope(gateway, header, recipient_keys=[stranger.public()]),
    )
    # A recipient outside recipient_unit: an authentic signature does not make it valid.
    header, envelope = sealed()
    h = header_json(envelope)
    h["recipient_unit"] = "so-nordost"
    await refused(
        400,
        "envelope_header_invalid",
        header,
        resign_with_header(envelope, h, gateway.devices[ANNA]),
    )

    # The header against the schema and the vocabulary.
    h = header_json(envelope)
    h["priority"] = "high"
    await refused(
        400,
        "envelope_header_invalid",
        header,
        resign_with_header(envelope, h, gateway.devices[ANNA]),
    )
    await refused(400, "envelope_header_invalid", *sealed(category="made_up_category"))
    t = now()
    await refused(422, "ttl_invalid", *sealed(created=t, expires=t + 60 * DAY))

    # Tampering and transport.
    header, envelope = sealed()
    tampered = bytearray(envelope)
    # Inside the last chunk's ciphertext: before it come the end sentinel (4 bytes) and the
    # signature (64); a chunk's ciphertext is at least 17 bytes. (A fixed offset from the
    # end could land in the wrapped keys of a small envelope and give another code.)
    tampered[len(envelope) - 64 - 4 - 5] ^= 0x01
    await refused(400, "envelope_signature_invalid", header, bytes(tampered))
    await refused(400, "body_truncated", header, envelope[: len(envelope) // 2])
    reply = await gateway.client(ANNA).put(
        f"/v1/messages/{header.message_id}",
        envelope,
        content_type="application/vnd.stafett.envelope",
        signed_digest_of=b"other bytes",
    )
    assert_problem(reply, 400, "digest_mismatch")
    reply = await gateway.client(ANNA).put(
        f"/v1/messages/{header.message_id}", envelope, content_type="application/octet-stream"
    )
    assert_problem(reply, 415, "unsupported_media_type")

    # After a rotation that raised the minimum, the old recipient key is refused.
    bo2 = DeviceKeyPair.generate(KeyId.parse("sav/bo/2"))
    rotation = gateway.builder.rotate(bo2, min_encryption_version=2)
    await gateway.append(rotation)
    await refused(422, "recipient_key_too_old", *sealed())

    # Nothing of any refused send was stored.
    assert await count_messages(gateway) == 0
    assert blob_files(gateway) == []
    events = [(e, json.loads(d)) for e, d in await audit_events(gateway)]
    assert not [e for e, _ in events if e == "message_accepted"]
    codes = {d["code"] for e, d in events if e == "request_refused"}
    assert {"consent_withdrawn", "sender_mismatch", "recipient_key_too_old"} <= codes


@pytest.mark.asyncio
async def test_a_refused_send_is_evaluated_again_on_retry(gateway) -> None:
    record = signed_consent(gateway)
    header = header_for(gateway, consent_id=record["consent_id"])
    envelope = seal_envelope(gateway, header)
    assert_problem(await send(gateway, ANNA, header.message_id, envelope), 403, "consent_unknown")
    # The consent is registered afterwards: the same bytes are now accepted.
    assert (await gateway.client(ANNA).post("/v1/consents", record)).status == 201
    assert (await send(gateway, ANNA, header.message_id, envelope)).status == 201
    assert await count_messages(gateway) == 1
