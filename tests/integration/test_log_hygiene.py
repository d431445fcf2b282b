"""Nothing sensitive reaches the logs, at any level, from us or from a dependency.

A real gateway, the gateway's own logging set-up at DEBUG (every logger, including
aiosqlite, asyncpg, SQLAlchemy and aiohttp), a whole flow through the SDK — consent,
send, fetch, receipt — and one hand-signed request; then the captured text is searched
for everything that must never be there.
"""

from __future__ import annotations

import base64
import io
import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.observability.logs import setup_logging
from keys.crypto.consent_free_text import FreeText
from keys.protocol.httpsig import content_digest, new_nonce, sign_request
from tests.support.gateway import RunningGateway, stored_envelope
from tests.support.sdk import ANNA, BO, client, consent_fields, device_keystore, message_args

PERSONNUMMER = "19811228-9874"
MARKER = b"PLAINTEXT-MARKER-" + secrets.token_hex(8).encode()
NOTE = "FREETEXT-NOTE-" + secrets.token_hex(8)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    setup_logging("json", "DEBUG", stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def _forms(data: bytes) -> list[str]:
    """How bytes could appear in a log: hex, base64 (both alphabets), as text."""
    forms = [data.hex(), base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()]
    forms = [f.rstrip("=") for f in forms]
    text = data.decode("latin-1")
    if text.isprintable():
        forms.append(text)
    return forms


def _slices(data: bytes, width: int = 24) -> list[bytes]:
    """Slices of ``data`` (start, middle, end), long enough not to occur by chance."""
    mid = len(data) // 2
    return [data[:width], data[mid : mid + width], data[-width:]]


def _key_material(gw: RunningGateway) -> list[bytes]:
    material = [gw.admin_key.seed(), bytes(gw.admin_key.verify_key)]
    for pair in gw.devices.values():
        material += [
            pair.signing_key.seed(),
            bytes(pair.signing_key.verify_key),
            pair.encryption_key.secret_bytes(),
            bytes(pair.encryption_key.public_key),
        ]
    return material


@pytest.mark.asyncio
async def test_no_sensitive_data_in_logs_at_debug(
    gateway: RunningGateway, captured: io.StringIO, tmp_path: Path
) -> None:
    subject_key = secrets.token_bytes(32)
    envelope = b""
    sig_values: list[str] = []
    anna_store = device_keystore(gateway, ANNA)
    anna_store.subject_key = subject_key
    async with client(gateway, ANNA, keystore=anna_store) as anna, client(gateway, BO) as bo:
        subject = anna.subject_ref(PERSONNUMMER)
        # An oral consent: its note stays on the device; only the salted hash is sent.
        fields = consent_fields(
            ANNA,
            [("so-nordost", "sav")],
            purposes=("transfer_to_sav",),
            subject=subject,
            form="oral",
            evidence_hash=None,
            free_text_hash=FreeText.new("Vittne Vittnesson", NOTE).digest,
        )
        consent_id = await anna.record_consent(fields)
        body = MARKER * 500
        sent = await anna.send(**message_args(consent_id, subject_ref=subject, body=body))
        envelope = stored_envelope(gateway)
        dest = tmp_path / "out.bin"
        await bo.fetch(sent.message_id, dest)
        assert dest.read_bytes() == body
        await bo.ack(sent.message_id)

        # A hand-signed request: its signature header values must not be logged.
        path = "/v1/inbox"
        headers = sign_request(
            gateway.devices[ANNA].signing_key,
            ANNA,
            method="GET",
            path=path,
            query="",
            content_digest=content_digest(b""),
            created=int(time.time()),
            nonce=new_nonce(),
        )
        sig_values = [headers["Signature"], headers["Signature-Input"]]
        async with gateway.http.get(gateway.url / "v1" / "inbox", headers=headers) as resp:
            assert resp.status == 200

    text = captured.getvalue()
    # The capture really saw the flow: our access lines with request ids, and records
    # of third-party loggers (aiohttp's access log, on in this harness) at DEBUG level.
    assert logging.getLogger().isEnabledFor(logging.DEBUG)
    assert '"route": "/v1/messages/{message_id}/receipt"' in text
    assert '"logger": "aiohttp.access"' in text
    assert '"request_id": "' in text

    needles: list[str] = [PERSONNUMMER, PERSONNUMMER.replace("-", ""), subject, NOTE]
    needles += [MARKER.decode(), *sig_values]
    needles += [s for v in sig_values for s in (v[10:40], v[-30:])]
    for data in [*_slices(envelope), *_key_material(gateway), subject_key]:
        needles += _forms(data)
    needles += _forms(gateway.identity.signing_key.seed())
    leaked = [n for n in needles if n and n in text]
    assert not leaked, f"{len(leaked)} sensitive values in the log, e.g. {leaked[0][:12]}…"


def test_dependency_records_below_warning_are_dropped() -> None:
    """The filter that keeps parameter-printing dependencies quiet, whatever their level."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging("text", "DEBUG", stream=stream)
        for name in ("aiosqlite", "sqlalchemy.engine.Engine", "asyncpg.pool"):
            logger = logging.getLogger(name)
            logger.setLevel(logging.DEBUG)  # as echo=True or a debugging operator would
            logger.debug("executing %s with %s", "SELECT", NOTE)
            logger.info("[parameters: (%r,)]", NOTE)
            logger.warning("pool problem %s", name)
        logging.getLogger("gateway.test").debug("ours at debug")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    text = stream.getvalue()
    assert NOTE not in text
    assert text.count("pool problem") == 3
    assert "ours at debug" in text
