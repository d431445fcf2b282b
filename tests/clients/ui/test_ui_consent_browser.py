"""An oral consent for a minor, recorded in the browser as the CLI would record it.

The witness and the note stay on Sara's computer (``consents/<id>.json``, the CLI's
file); the gateway gets only their salted hash. The age comes from the personnummer:
without the guardians' forms the page refuses. Recording the same consent again shows
the one in force instead of a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browser_support import browser, check_accessible, needs_chromium, officer_page, screenshot
from playwright.async_api import Page, expect
from ui_support import running_ui

from keys.crypto.consent_free_text import FreeText
from tests.support.cli import Cli

pytestmark = [needs_chromium, pytest.mark.slow]
MINOR_PNR = "150505-1233"  # born 2015: under 18
WITNESS = "Kollega Karin Berg"
NOTE = "Samtycke lämnat muntligt vid hembesök 3 mars, pappan närvarande"


async def fill_oral(page: Page, base: str) -> None:
    await page.goto(base + "/consents/new")
    await page.get_by_label("Personnummer eller samordningsnummer").fill(MINOR_PNR)
    await expect(page.locator("#minor-notice")).to_be_visible()
    await page.locator("input[name=pair][value='sav:so-nordost']").check()
    await page.locator("#categories-case_transfer").check()
    await page.locator("#purposes-transfer_to_district").check()
    await page.get_by_label("Muntligt, med vittne").check()
    # Only the chosen form's part is shown: no scan field for an oral consent.
    await expect(page.locator("#evidence")).to_be_hidden()
    await page.get_by_label("Vittne", exact=True).fill(WITNESS)
    await page.get_by_label("Anteckning om samtycket").fill(NOTE)


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@needs_chromium
@pytest.mark.asyncio
async def test_oral_consent_for_a_minor_keeps_the_text_on_the_device(
    cli: Cli, tmp_path: Path
) -> None:
    guardian = tmp_path / "vardnadshavare.pdf"
    guardian.write_bytes(b"%PDF-1.4 vardnadshavarens underskrift")
    async with running_ui(cli, "sara") as sara_ui, browser() as b:
        _, sara = await officer_page(b, sara_ui)
        await fill_oral(sara, sara_ui.origin)
        await check_accessible(sara)
        await sara.get_by_role("button", name="Registrera samtycket").click()
        # Under 18 by the number and no guardians' forms: refused, tied to the field.
        summary = sara.locator(".error-summary")
        await expect(summary).to_contain_text("år enligt personnumret")
        await expect(summary).to_contain_text("behövs vårdnadshavarnas samtycke")
        await expect(summary.get_by_role("link")).to_have_attribute("href", "#guardian_evidence")
        await check_accessible(sara)
        assert not (sara_ui.home / "consents").exists() or not any(
            (sara_ui.home / "consents").iterdir()
        )

        await fill_oral(sara, sara_ui.origin)
        await sara.locator("#guardian_evidence").set_input_files(str(guardian))
        await screenshot(sara, "consent-record-oral")
        await sara.get_by_role("button", name="Registrera samtycket").click()
        await sara.wait_for_url("**/print?new=1")
        consent_id = sara.url.split("/consents/")[1].split("/")[0]
        await expect(sara.locator("#consent-kept")).to_contain_text(WITNESS)
        await expect(sara.get_by_text("Vårdnadshavare (om du är under 18 år)")).to_be_visible()
        await check_accessible(sara)

        # The CLI's file, with the text whose salted hash the signed record names.
        kept = json.loads((sara_ui.home / "consents" / f"{consent_id}.json").read_text())
        text = FreeText.from_json(kept)
        assert (text.witness, text.note) == (WITNESS, NOTE)
        assert text.matches(kept["free_text_hash"])
        # Nothing of the free text reached the gateway (its database and blob folder).
        assert files_containing(tmp_path / "gw", WITNESS.encode()) == []
        assert WITNESS.encode() not in (tmp_path / "gw.sqlite3").read_bytes()
        assert NOTE.encode() not in (tmp_path / "gw.sqlite3").read_bytes()

        # The same consent again: the gateway answers with the one in force.
        await fill_oral(sara, sara_ui.origin)
        await sara.locator("#guardian_evidence").set_input_files(str(guardian))
        await sara.get_by_role("button", name="Registrera samtycket").click()
        await sara.wait_for_url(f"**/consents/{consent_id}/print?existing=1")
        await expect(sara.locator("#consent-existing")).to_contain_text(
            "Inget nytt samtycke registrerades"
        )
        await check_accessible(sara)
        # The second attempt's text named nothing and is gone: one file, the first.
        assert [p.name for p in (sara_ui.home / "consents").iterdir()] == [f"{consent_id}.json"]


@needs_chromium
@pytest.mark.asyncio
async def test_pick_a_unit_by_name_recall_with_confirmation_and_send_again(cli: Cli) -> None:
    await cli.record_consent("sara")
    async with running_ui(cli, "sara") as sara_ui, browser() as b:
        _, sara = await officer_page(b, sara_ui)
        await sara.goto(sara_ui.url("/compose"))
        # The search field filters the native list by the unit's Swedish name.
        await sara.get_by_label("Sök enhet (namn eller kod)").fill("nordost")
        await expect(sara.get_by_label("Mottagande enhet")).to_have_value("so-nordost")
        await expect(sara.locator("#to-search-status")).to_have_text("Enheter som matchar: 1.")
        # Only the chosen unit's named officers are offered.
        await expect(
            sara.get_by_label("nora (Socialtjänsten Nordost, so-nordost/nora)")
        ).to_be_visible()
        await sara.get_by_label("Sök enhet (namn eller kod)").fill("polisen")
        await expect(sara.locator("#to-search-status")).to_have_text(
            "Ingen enhet matchar sökningen."
        )
        await expect(sara.get_by_label("Mottagande enhet")).to_have_value("")
        await expect(sara.locator("#officers [data-unit='so-nordost']").first).to_be_hidden()
        await sara.get_by_label("Sök enhet (namn eller kod)").fill("Socialtjänsten")
        await check_accessible(sara)
        await sara.locator("#category").select_option("case_transfer")
        await sara.locator("#purpose").select_option("transfer_to_district")
        await sara.get_by_label("Personnummer eller samordningsnummer").fill("19121212-1212")
        await sara.get_by_label("Meddelande", exact=True).fill("Ta tillbaka")
        await screenshot(sara, "compose-picker")
        await sara.get_by_role("button", name="Skicka").click()
        await sara.wait_for_url("**/sent?sent=*")

        row = sara.locator("tr[data-message-id]")
        await row.get_by_role("link", name="Återkalla").click()
        await check_accessible(sara)
        await sara.get_by_role("button", name="Återkalla meddelandet").click()
        await expect(sara.locator(".error-summary")).to_contain_text("Bekräfta att du vill")
        await sara.get_by_label("Jag vill återkalla meddelandet").check()
        await sara.get_by_role("button", name="Återkalla meddelandet").click()
        await sara.wait_for_url("**/sent?recalled=1")
        await expect(sara.get_by_text("Meddelandet är återkallat.")).to_be_visible()
        await expect(sara.locator("tr[data-state=recalled]")).to_have_count(1)
        await check_accessible(sara)
        await screenshot(sara, "sent-recalled")
        await (
            sara.locator("tr[data-state=recalled]").get_by_role("link", name="Skicka igen").click()
        )
        await expect(sara.get_by_label("Mottagande enhet")).to_have_value("so-nordost")
        await expect(sara.locator("#category")).to_have_value("case_transfer")
