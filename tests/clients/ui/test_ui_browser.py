"""End to end in Debian's Chromium: two officers, two browser profiles, a real gateway.

Sara (SAV) and Nora (so-nordost) each run their own ``stafett ui`` on their own state
folder. Every page visited is checked with axe-core.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from browser_support import browser, check_accessible, needs_chromium, officer_page, screenshot
from playwright.async_api import Page, expect
from ui_support import running_ui

from tests.support.cli import Cli

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


async def record_consent_in_ui(page: Page, base: str, evidence: Path) -> None:
    """Sara records a written consent sav → so-nordost for a case transfer."""
    await page.goto(base + "/consents/new")
    await check_accessible(page)
    await page.get_by_label("Personnummer eller samordningsnummer").fill(PNR)
    await page.locator("input[name=pair][value='sav:so-nordost']").check()
    await page.locator("#categories-case_transfer").check()
    await page.locator("#purposes-transfer_to_district").check()
    await page.get_by_label("Skriftligt, på en undertecknad blankett").check()
    await page.locator("#evidence").set_input_files(str(evidence))
    await screenshot(page, "consent-record")
    await page.get_by_role("button", name="Registrera samtycket").click()
    await page.wait_for_url("**/print?new=1")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Samtycke till att uppgifter lämnas mellan enheter"
    )
    await check_accessible(page)
    await screenshot(page, "consent-form")


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@needs_chromium
@pytest.mark.asyncio
async def test_send_open_download_hand_over_and_verified_receipt(cli: Cli, tmp_path: Path) -> None:
    evidence = tmp_path / "samtycke-skannat.pdf"
    evidence.write_bytes(b"%PDF-1.4 undertecknad blankett")
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
        await record_consent_in_ui(sara, sara_ui.origin, evidence)

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


@needs_chromium
@pytest.mark.asyncio
async def test_list_and_withdraw_a_consent_with_confirmation(cli: Cli, tmp_path: Path) -> None:
    evidence = tmp_path / "blankett.pdf"
    evidence.write_bytes(b"%PDF-1.4 blankett")
    async with running_ui(cli, "sara") as sara_ui, browser() as b:
        _, sara = await officer_page(b, sara_ui)
        await record_consent_in_ui(sara, sara_ui.origin, evidence)
        await sara.goto(sara_ui.url("/consents"))
        await sara.get_by_label("Personnummer eller samordningsnummer").fill(PNR)
        await sara.get_by_role("button", name="Visa samtycken").click()
        row = sara.locator("tr[data-consent-id]")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("gäller")
        await check_accessible(sara)
        await screenshot(sara, "consents")
        await row.get_by_role("link", name="Återkalla").click()
        await sara.get_by_label("Den enskilde har återkallat sitt samtycke").check()
        await sara.get_by_role("button", name="Återkalla samtycket").click()
        summary = sara.locator(".error-summary")
        await expect(summary).to_contain_text("Bekräfta att rätt samtycke återkallas")
        await check_accessible(sara)
        await sara.get_by_label("Jag har kontrollerat att rätt samtycke återkallas").check()
        await sara.get_by_role("button", name="Återkalla samtycket").click()
        await sara.wait_for_url("**/consents?withdrawn=0")
        await expect(sara.get_by_text("Samtycket är återkallat.")).to_be_visible()


@needs_chromium
@pytest.mark.asyncio
async def test_directory_and_english(cli: Cli) -> None:
    async with running_ui(cli, "sara") as sara_ui, browser() as b:
        _, sara = await officer_page(b, sara_ui)
        await sara.goto(sara_ui.url("/directory"))
        await expect(sara.locator("td.fingerprint").first).to_be_visible()
        await expect(sara.get_by_text("so-nordost/nora")).to_be_visible()
        await check_accessible(sara)
        await screenshot(sara, "directory")
        await sara.get_by_role("link", name="English").click()
        await expect(sara.get_by_role("heading", level=1)).to_have_text("Key directory")
        await expect(sara.locator("html")).to_have_attribute("lang", "en")
        await check_accessible(sara)
