"""End to end in Debian's Chromium: two officers, two browser profiles, a real gateway.

Sara (SAV) and Nora (so-nordost) each run their own ``stafett ui`` on their own state
folder. Every page visited is checked with axe-core.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from browser_support import browser, check_accessible, needs_chromium, officer_page, screenshot
from cli_support import Cli
from playwright.async_api import Page, expect
from ui_support import running_ui

pytestmark = [needs_chromium, pytest.mark.slow]
PNR = "19121212-1212"
ATTACHMENT = bytes(range(256)) * 1500 + b"slut"  # binary, ~375 KB


async def compose(page: Page, *, category: str, purpose: str, text: str, files: list[Path]) -> None:
    await page.goto(page.url.split("/", 3)[0] + "//" + page.url.split("/")[2] + "/compose")
    await check_accessible(page)
    await page.get_by_label("Mottagande enhet").select_option("so-nordost")
    await page.locator("#category").select_option(category)
    await page.locator("#purpose").select_option(purpose)
    await page.get_by_label("Personnummer eller samordningsnummer").fill(PNR)
    await page.get_by_label("Meddelande", exact=True).fill(text)
    if files:
        await page.locator("#files").set_input_files([str(f) for f in files])


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@needs_chromium
@pytest.mark.asyncio
async def test_send_open_download_hand_over_and_verified_receipt(cli: Cli, tmp_path: Path) -> None:
    await cli.record_consent("sara")
    attachment = tmp_path / "beslut.pdf"
    attachment.write_bytes(ATTACHMENT)
    secret_text = "Hotbilden är förhöjd; flytt behövs snarast."
    async with (
        running_ui(cli, "sara") as sara_ui,
        running_ui(cli, "nora") as nora_ui,
        browser() as b,
    ):
        _, nora = await officer_page(b, nora_ui)
        await expect(nora.get_by_text("Inga meddelanden väntar på dig.")).to_be_visible()
        await check_accessible(nora)
        _, sara = await officer_page(b, sara_ui)

        await compose(
            sara,
            category="case_transfer",
            purpose="transfer_to_district",
            text=secret_text,
            files=[attachment],
        )
        await screenshot(sara, "compose")
        await sara.get_by_role("button", name="Skicka").click()
        await sara.wait_for_url("**/sent?sent=*")
        await expect(sara.get_by_text("Meddelandet är skickat till so-nordost")).to_be_visible()
        await check_accessible(sara)

        # Nora's open inbox page fills in by itself (push stream → SSE → refresh).
        row = nora.locator("tr[data-message-id]")
        await expect(row).to_have_count(1, timeout=15_000)
        await expect(nora.locator("#live")).to_contain_text("Nytt meddelande")
        await screenshot(nora, "inbox")
        await row.get_by_role("link", name="Läs").click()
        await check_accessible(nora)
        await nora.get_by_role("button", name="Öppna meddelandet").click()
        await expect(nora.locator("#message-text")).to_have_text(secret_text)
        await check_accessible(nora)
        await screenshot(nora, "message")
        async with nora.expect_download() as info:
            await nora.get_by_role("link", name="Spara beslut.pdf").click()
        download = await info.value
        saved = tmp_path / "saved.pdf"
        await download.save_as(saved)
        assert saved.read_bytes() == ATTACHMENT
        saved.unlink()

        await nora.get_by_role("button", name="Ta emot").click()
        await nora.wait_for_url("**/inbox?done=accepted")
        await expect(nora.get_by_text("Meddelandet är mottaget.")).to_be_visible()
        await expect(nora.locator("tr[data-message-id]")).to_have_count(0)

        # Nothing decrypted stays on Nora's disk: not the text, not the attachment.
        assert files_containing(nora_ui.home, secret_text.encode()) == []
        assert files_containing(nora_ui.home, ATTACHMENT[-2000:]) == []

        await sara.goto(sara_ui.url("/sent"))
        receipt = sara.locator("tr[data-state=handed_over] .receipt")
        await expect(receipt).to_contain_text("Mottaget av so-nordost/nora/1")
        await expect(receipt).to_contain_text("kvittot är kontrollerat")
        await check_accessible(sara)
        await screenshot(sara, "sent")


@needs_chromium
@pytest.mark.asyncio
async def test_reject_with_a_reason_reaches_the_sender(cli: Cli) -> None:
    await cli.record_consent("sara")
    async with (
        running_ui(cli, "sara") as sara_ui,
        running_ui(cli, "nora") as nora_ui,
        browser() as b,
    ):
        _, sara = await officer_page(b, sara_ui)
        await compose(
            sara, category="case_transfer", purpose="transfer_to_district", text="Fel?", files=[]
        )
        await sara.get_by_role("button", name="Skicka").click()
        await sara.wait_for_url("**/sent?sent=*")
        _, nora = await officer_page(b, nora_ui)
        await nora.get_by_role("link", name="Läs").click()
        await nora.get_by_role("button", name="Öppna meddelandet").click()
        await nora.get_by_role("link", name="Avvisa").click()
        # Refused without a reason: the error summary links to the field.
        await nora.get_by_role("button", name="Avvisa meddelandet").click()
        summary = nora.locator(".error-summary")
        await expect(summary).to_contain_text("Välj varför du avvisar meddelandet")
        await check_accessible(nora)
        await screenshot(nora, "reject")
        await nora.get_by_label("Fel stadsområde (annan tillhörighet)").check()
        await nora.get_by_role("button", name="Avvisa meddelandet").click()
        await nora.wait_for_url("**/inbox?done=rejected")

        await sara.goto(sara_ui.url("/sent"))
        receipt = sara.locator("tr[data-state=rejected] .receipt")
        await expect(receipt).to_contain_text("Avvisat av so-nordost/nora/1")
        await expect(receipt).to_contain_text("Fel stadsområde")


@needs_chromium
@pytest.mark.asyncio
async def test_send_without_covering_consent_is_stopped_before_anything_is_sent(
    cli: Cli,
) -> None:
    await cli.record_consent("sara")  # covers case_transfer only
    async with running_ui(cli, "sara") as sara_ui, browser() as b:
        _, sara = await officer_page(b, sara_ui)
        await compose(
            sara, category="threat_assessment", purpose="transfer_to_district", text="x", files=[]
        )
        await sara.get_by_role("button", name="Skicka").click()
        summary = sara.locator(".error-summary")
        await expect(summary).to_contain_text("Inget aktivt samtycke täcker")
        await expect(summary).to_contain_text("Inget har skickats")
        await expect(summary.get_by_role("link")).to_have_attribute("href", "#pnr")
        await check_accessible(sara)
        await screenshot(sara, "no-consent")
        await sara.goto(sara_ui.url("/sent"))
        await expect(sara.get_by_text("Du har inte skickat något än.")).to_be_visible()


@needs_chromium
@pytest.mark.asyncio
async def test_idle_lock_takes_the_page_to_the_unlock_form(cli: Cli) -> None:
    async with running_ui(cli, "nora", idle_s=2) as nora_ui, browser() as b:
        _, nora = await officer_page(b, nora_ui)
        await nora.wait_for_url("**/unlock", timeout=10_000)
        await expect(nora.get_by_label("Lösenfras")).to_be_visible()
        await asyncio.sleep(0)
        await screenshot(nora, "unlock")
