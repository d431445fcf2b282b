"""The local app's defences over plain HTTP: session, Host, Origin, CSRF, headers, lock.

Each refusal is checked to change nothing: a refused POST /lock leaves the keystore
unlocked, a refused accept leaves the message in the inbox.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ui_support import PASSPHRASE, http_session, login, running_ui

from keys.crypto.keypairs import DeviceKeyPair, KeyId
from tests.support.cli import Cli


@pytest.mark.asyncio
async def test_pages_need_the_session_cookie(cli: Cli) -> None:
    async with running_ui(cli, "nora") as ui, http_session() as s:
        for path in ("/inbox", "/compose", "/sent", "/events", "/unlock"):
            async with s.get(ui.url(path), allow_redirects=False) as resp:
                assert resp.status == 403, path
                assert "no_session" in await resp.text()


@pytest.mark.asyncio
async def test_refusal_pages_say_in_plain_words_what_happened_and_what_to_do(cli: Cli) -> None:
    async with running_ui(cli, "nora") as ui, http_session() as s:
        await login(s, ui)
        # The officer closed the browser: a new browser has no session.
        async with http_session() as closed, closed.get(ui.url("/inbox")) as resp:
            assert resp.status == 403
            assert resp.content_type == "text/html"
            page = await resp.text()
            assert "Du är inte inloggad i Stafett" in page
            assert "Starta om Stafett med kommandot stafett ui och öppna den nya länken" in page
            assert "Felkod: no_session" in page
            assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
            assert resp.headers["Cache-Control"] == "no-store"
            assert resp.headers["X-Frame-Options"] == "DENY"
            # Nothing that helps an intruder: no CSRF token, no device, no expected host.
            assert ui.guard.csrf not in page
            assert "nora" not in page
            assert str(ui.guard.port) not in page
            assert "<script" not in page
        # The link was used already (the officer opened it twice).
        async with http_session() as other, other.get(ui.login_url) as resp:
            assert resp.status == 403
            page = await resp.text()
            assert "Länken fungerar inte" in page
            assert "kommandot stafett ui" in page
            assert "Felkod: login_used" in page
            assert ui.guard.csrf not in page
        # A form without its token: what to do differs (reload), nothing changed.
        async with s.post(ui.url("/lock"), data={}, headers={"Origin": ui.origin}) as resp:
            assert resp.status == 403
            page = await resp.text()
            assert "Formuläret kunde inte skickas" in page
            assert "Inget ändrades" in page
            assert ui.guard.csrf not in page
        # The language setting switches the page to English.
        ui.guard.language = "en"
        async with http_session() as closed, closed.get(ui.url("/sent")) as resp:
            page = await resp.text()
            assert '<html lang="en">' in page
            assert "You are not signed in to Stafett" in page
            assert "Restart Stafett with the command stafett ui" in page
            assert "Error code: no_session" in page


@pytest.mark.asyncio
async def test_login_token_works_once_and_sets_a_strict_httponly_cookie(cli: Cli) -> None:
    async with running_ui(cli, "nora") as ui, http_session() as s:
        async with s.get(ui.url("/login/wrong-token"), allow_redirects=False) as resp:
            assert resp.status == 403
        async with s.get(ui.login_url, allow_redirects=False) as resp:
            assert resp.status == 303
            cookie = resp.headers["Set-Cookie"]
            assert "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie
        # A second browser (another local user) cannot reuse the spent token.
        async with http_session() as other, other.get(ui.login_url, allow_redirects=False) as r2:
            assert r2.status == 403


@pytest.mark.asyncio
async def test_wrong_host_is_refused_dns_rebinding(cli: Cli) -> None:
    async with running_ui(cli, "nora") as ui, http_session() as s:
        await login(s, ui)
        headers = {"Host": f"attacker.example:{ui.guard.port}"}
        async with s.get(ui.url("/inbox"), headers=headers, allow_redirects=False) as resp:
            assert resp.status == 421


@pytest.mark.asyncio
async def test_post_needs_our_origin_and_csrf_token(cli: Cli) -> None:
    async with running_ui(cli, "nora") as ui, http_session() as s:
        await login(s, ui)
        csrf = ui.guard.csrf
        attempts = [
            ({"csrf": csrf}, {}),  # no Origin
            ({"csrf": csrf}, {"Origin": "http://attacker.example"}),
            ({"csrf": csrf}, {"Origin": ui.origin, "Sec-Fetch-Site": "cross-site"}),
            ({}, {"Origin": ui.origin}),  # no token
            ({"csrf": "x" * 43}, {"Origin": ui.origin}),  # wrong token
        ]
        for data, headers in attempts:
            async with s.post(
                ui.url("/lock"), data=data, headers=headers, allow_redirects=False
            ) as resp:
                assert resp.status == 403, (data, headers)
        # Nothing changed: still unlocked.
        async with s.get(ui.url("/inbox"), allow_redirects=False) as resp:
            assert resp.status == 200
        async with s.post(
            ui.url("/lock"),
            data={"csrf": csrf},
            headers={"Origin": ui.origin},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303
        async with s.get(ui.url("/inbox"), allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"].startswith("/unlock")


@pytest.mark.asyncio
async def test_headers_csp_and_no_store(cli: Cli) -> None:
    async with running_ui(cli, "nora") as ui, http_session() as s:
        await login(s, ui)
        for path in ("/inbox", "/unlock", "/login/nope"):
            async with s.get(ui.url(path)) as resp:
                csp = resp.headers["Content-Security-Policy"]
                assert "default-src 'none'" in csp
                assert "script-src 'self'" in csp
                assert "unsafe-inline" not in csp
                assert "frame-ancestors 'none'" in csp
                assert resp.headers["Cache-Control"] == "no-store"
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
                body = await resp.text()
                assert "<script>" not in body
                assert " style=" not in body
                assert "http://" not in body.replace(ui.origin, "")
                assert "https://" not in body


@pytest.mark.asyncio
async def test_idle_lock_forgets_the_keys(cli: Cli) -> None:
    async with running_ui(cli, "nora", idle_s=0.6) as ui, http_session() as s:
        await login(s, ui)
        async with s.get(ui.url("/inbox"), allow_redirects=False) as resp:
            assert resp.status == 200
        await asyncio.sleep(1.5)
        async with s.get(ui.url("/inbox"), allow_redirects=False) as resp:
            assert resp.status == 303
        assert not (ui.home / "ui-spool").exists()


@pytest.mark.asyncio
async def test_lock_forgets_opened_content_and_leaves_nothing_on_disk(cli: Cli) -> None:
    await cli.record_consent("sara")
    secret = "Uppgift som bara får finnas i minnet"
    sent = await cli.send(text=secret)
    message_id = sent.json()["message_id"]
    async with running_ui(cli, "nora") as ui, http_session() as s:
        await login(s, ui)
        post: dict[str, Any] = {"data": {"csrf": ui.guard.csrf}, "headers": {"Origin": ui.origin}}
        async with s.post(ui.url(f"/messages/{message_id}/open"), **post) as resp:
            assert resp.status == 200
            assert secret in await resp.text()
        # Only in memory: no file under the state folder holds the text.
        leaked = [
            p for p in ui.home.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()
        ]
        assert leaked == []
        async with s.post(ui.url("/lock"), **post) as resp:
            assert resp.url.path == "/unlock"
        # After the lock the message page needs the keystore again, and shows nothing.
        async with s.get(ui.url(f"/messages/{message_id}"), allow_redirects=False) as resp:
            assert resp.status == 303
        assert not (ui.home / "ui-spool").exists()


@pytest.mark.asyncio
async def test_a_changed_key_is_a_prominent_warning_naming_the_signing_entry(cli: Cli) -> None:
    """Sara verified the directory once; then nora's key is rotated. On the next unlock
    the directory page (and a banner on every page) says what changed and who signed."""
    async with running_ui(cli, "sara") as ui, http_session() as s:
        await login(s, ui)  # the first verification: the known checkpoint is saved
        post: dict[str, Any] = {"data": {"csrf": ui.guard.csrf}, "headers": {"Origin": ui.origin}}
        async with s.post(ui.url("/lock"), **post) as resp:
            assert resp.status == 200
        new = DeviceKeyPair.generate(KeyId.parse("so-nordost/nora/2"))
        await cli.gw.append(cli.gw.builder.rotate(new, min_encryption_version=1))
        async with s.post(
            ui.url("/unlock"),
            data={"csrf": ui.guard.csrf, "passphrase": PASSPHRASE, "next": "/inbox"},
            headers={"Origin": ui.origin},
        ) as resp:
            assert resp.status == 200
            assert 'class="warning-banner"' in await resp.text()
        async with s.get(ui.url("/directory")) as resp:
            page = await resp.text()
        assert "NYCKELN FÖR so-nordost/nora HAR BYTTS" in page
        assert "signerad av admin/root/1" in page
        assert new.signing_key.verify_key.fingerprint() in page
