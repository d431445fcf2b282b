"""Consent handlers: parse, call one service function, serialise. No SQL, no crypto."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.appkeys import BLOBS, DIRECTORY, SESSIONMAKER, SETTINGS
from gateway.auth import caller_of
from gateway.blobs import unlink_all
from gateway.services import consents
from gateway.views.jsonbody import read_json
from gateway.views.path_ids import consent_id_of
from keys.protocol.consent_record import FIELDS as CONSENT_FIELDS
from keys.protocol.problems import FieldInvalid

_MAX_INT = 2**53 - 1


def _now() -> int:
    return int(time.time())


async def post_consent(request: web.Request) -> web.Response:
    raw = await read_json(request, required=CONSENT_FIELDS)
    async with request.app[SESSIONMAKER].begin() as session:
        answer, created = await consents.record_consent(
            session,
            caller_of(request),
            raw,
            directory=request.app[DIRECTORY].directory,
            policy=consents.policy_from(request.app[SETTINGS]),
            now=_now(),
        )
    return web.json_response(answer, status=201 if created else 200)


async def get_consents(request: web.Request) -> web.Response:
    subject_ref = consents.check_subject_ref(request.query.get("subject_ref"))
    async with request.app[SESSIONMAKER].begin() as session:
        listed = await consents.list_consents(session, caller_of(request), subject_ref, now=_now())
    return web.json_response({"consents": listed})


async def get_consent(request: web.Request) -> web.Response:
    consent_id = consent_id_of(request)
    # A write transaction: reading a person's consent is audited like listing them.
    async with request.app[SESSIONMAKER].begin() as session:
        body = await consents.get_consent(session, caller_of(request), consent_id, now=_now())
    return web.json_response(body)


async def post_withdraw(request: web.Request) -> web.Response:
    consent_id = consent_id_of(request)
    body = await read_json(request, required={"reason"}, optional={"withdrawn_at"})
    reason, withdrawn_at = body["reason"], body.get("withdrawn_at")
    if not isinstance(reason, str):
        raise FieldInvalid("reason must be a withdrawal reason code")
    if withdrawn_at is not None and (
        type(withdrawn_at) is not int or not 0 <= withdrawn_at <= _MAX_INT
    ):
        raise FieldInvalid("withdrawn_at must be an integer Unix time")
    async with request.app[SESSIONMAKER].begin() as session:
        result = await consents.withdraw_consent(
            session,
            caller_of(request),
            consent_id,
            reason=reason,
            withdrawn_at=withdrawn_at,
            policy=consents.policy_from(request.app[SETTINGS]),
            blobs=request.app[BLOBS],
            now=_now(),
        )
    # After the commit: a rolled-back withdrawal must not have deleted content.
    unlink_all(result.files)
    return web.json_response(result.answer)
