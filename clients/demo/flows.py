"""``make demo``: the city's handover flows, end to end, with the real CLIs.

A trust root, a gateway on SQLite on 127.0.0.1, the units sav, so-nordost, so-hisingen,
socialjour and las-storgoteborg, one officer device each (``clients.demo.base``), then
the flows (``Demo.run``), each outcome checked: consent, threat assessment, case
transfer, a refusal, an after-hours handover with its due time, a rejection for the
wrong district, a withdrawal, a key rotation and a revocation
(``clients.demo.keys``), and the audit trail verified online and offline. Exit 0
when every step behaved as expected, 1 (with what went wrong) otherwise. The gateway is
always stopped and the temp directory removed (``--keep`` keeps it for a look).

The person in the demo has Skatteverket's test personnummer 19121212-1212.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import time as wall_time
from pathlib import Path
from typing import Any

from clients.demo.base import PNR
from clients.demo.gateway_process import tool
from clients.demo.keys import DemoKeys
from clients.demo.support import DemoFailed, minimal_pdf, stockholm
from keys.domain.calendar import BusinessCalendar, unix


class Demo(DemoKeys):
    def step1_consent(self) -> None:
        self.say("1. SAV registrerar ett skriftligt samtycke (SAV ⇄ LAS, SAV → so-nordost)")
        form = self.write("samtyckesblankett.pdf", minimal_pdf("Samtycke (underskrivet)"))
        answer = self.stafett(
            "sara",
            "consent",
            "record",
            "--pnr-stdin",
            "--pair",
            "sav:las-storgoteborg",
            "--pair",
            "las-storgoteborg:sav",
            "--pair",
            "sav:so-nordost",
            "--category",
            "threat_assessment",
            "--category",
            "case_transfer",
            "--purpose",
            "initial_threat_assessment",
            "--purpose",
            "transfer_to_district",
            "--days",
            "180",
            "--form",
            "written",
            "--evidence",
            str(form),
            stdin=PNR,
        ).json()
        self.consent_id = answer["consent_id"]
        listed = self.stafett("sara", "consent", "list", "--pnr-stdin", stdin=PNR).json()
        statuses = {c["consent_id"]: (c["status"], c["verified"]) for c in listed["consents"]}
        self.check(
            statuses.get(self.consent_id) == ("active", True),
            f"samtycke {self.consent_id[:8]}… aktivt, signerat av sav/sara/1",
        )

    def step2_threat_assessment(self) -> None:
        self.say("2. SAV begär hotbildsbedömning av LAS; LAS svarar med ett dokument")
        text = "Begäran om initial hotbildsbedömning. Kontakta SAV vid frågor."
        request = self.send(
            "sara",
            "las-storgoteborg",
            "threat_assessment",
            "initial_threat_assessment",
            "--text-file",
            str(self.write("begaran.txt", text)),
        ).json()["message_id"]
        inbox = self.stafett("lars", "inbox").json()["messages"]
        self.check([m["message_id"] for m in inbox] == [request], "LAS ser begäran i inkorgen")
        opened = self.open("lars", request)
        got = (Path(opened["path"]) / "message.txt").read_text()
        self.check(
            got == text and opened["sender"] == "sav/sara/1",
            "LAS har verifierat avsändaren och läst begäran",
        )
        self.stafett("lars", "ack", request)
        assessment = "Hotbildsbedömning: låg hotnivå. Ingen skyddad adress krävs."
        answer = self.send(
            "lars",
            "sav",
            "threat_assessment",
            "initial_threat_assessment",
            "--reply-to",
            request,
            "--file",
            str(self.write("hotbildsbedomning.txt", assessment)),
        ).json()["message_id"]
        opened = self.open("sara", answer)
        got = (Path(opened["path"]) / "files" / "hotbildsbedomning.txt").read_text()
        self.check(
            got == assessment and opened["in_reply_to"] == request,
            "SAV har tagit emot bedömningen som svar på sin begäran",
        )
        self.stafett("sara", "ack", answer)

    def step3_case_transfer(self) -> None:
        self.say("3. SAV flyttar över ärendet till so-nordost med en PDF")
        pdf = minimal_pdf("Arendeoverflyttning SAV -> Nordost")
        message = self.send(
            "sara",
            "so-nordost",
            "case_transfer",
            "transfer_to_district",
            "--officer",
            "nora",
            "--text-file",
            str(self.write("overflyttning.txt", "Se bifogad PDF.")),
            "--file",
            str(self.write("arende.pdf", pdf)),
        ).json()["message_id"]
        opened = self.open("nora", message)
        got = (Path(opened["path"]) / "files" / "arende.pdf").read_bytes()
        self.check(got == pdf, "so-nordost har öppnat ärendet; PDF:en är bit för bit oförändrad")
        self.stafett("nora", "ack", message)
        status = self.stafett("sara", "status", message).json()["messages"][0]
        receipt = status["receipt"] or {}
        self.check(
            status["state"] == "handed_over"
            and receipt.get("verified") is True
            and receipt.get("recipient") == "so-nordost/nora/1",
            "SAV ser ett verifierat, signerat kvitto från so-nordost/nora/1",
        )
        again = self.stafett("nora", "open", message, "--out", str(self.root / "again"), expect=1)
        self.check(
            "REDAN ÖPPNAT" in again.stderr,
            "ett andra öppnande av samma meddelande flaggas (möjlig återspelning)",
        )
        again = self.stafett(
            "nora", "open", message, "--reopen", "--out", str(self.root / "again"), expect=1
        )
        self.check(
            "message_gone" in again.stderr and not self.blobs_left(),
            "innehållet finns inte längre på gatewayn",
        )

    def step4_refused(self) -> None:
        self.say("4. so-nordost försöker skicka vidare till so-hisingen")
        refused = self.send(
            "nora",
            "so-hisingen",
            "case_transfer",
            "transfer_to_district",
            "--consent",
            self.consent_id,
            "--text-file",
            str(self.write("vidare.txt", "Vidare till Hisingen.")),
            expect=1,
        )
        reason = refused.stderr.strip().splitlines()[-1]
        self.check("consent_direction_not_covered" in reason, f"vägrat: {reason}")
        self.check(
            self.stafett("hugo", "inbox").json()["messages"] == [],
            "so-hisingen har inte fått något",
        )

    def step5_after_hours(self) -> None:
        self.say("5. Socialjouren lämnar över ett ärende till so-nordost")
        self.stafett(
            "siv",
            "consent",
            "record",
            "--pnr-stdin",
            "--pair",
            "socialjour:so-nordost",
            "--category",
            "after_hours_matter",
            "--purpose",
            "after_hours_handover",
            "--days",
            "30",
            "--form",
            "oral",
            "--witness",
            "Jourkollega P. Persson",
            "--note",
            "Muntligt samtycke i telefon kl. 22.40",
            stdin=PNR,
        )
        text = "Ansökan inkom kl. 22.30 via jourtelefonen. Överlämnas nästa vardag."
        sent = self.send(
            "siv",
            "so-nordost",
            "after_hours_matter",
            "after_hours_handover",
            "--text-file",
            str(self.write("jour.txt", text)),
        ).json()
        message = sent["message_id"]
        self.check_due(sent)
        inbox = self.stafett("nora", "inbox").json()["messages"]
        self.check(
            any(m["message_id"] == message and m["sender"] == "socialjour/siv/1" for m in inbox),
            "so-nordost ser jourärendet i inkorgen",
        )
        opened = self.open("nora", message)
        self.check(
            (Path(opened["path"]) / "message.txt").read_text() == text,
            "so-nordost har läst jourärendet",
        )
        self.stafett("nora", "ack", message)
        status = self.stafett("siv", "status", message).json()["messages"][0]
        self.check(
            status["state"] == "handed_over"
            and status["receipt"]["verified"]
            and status["due"] == sent["due"],
            "socialjouren ser det verifierade kvittot (och senast-tiden i sin status)",
        )

    def check_due(self, sent: dict[str, Any]) -> None:
        """The due time the gateway set, recomputed here from the deadline rule for
        socialjour -> district (gateway/deadlines.toml): the next business day at 12:00
        Europe/Stockholm after acceptance (weekends, public holidays and the eves of
        midsummer, Christmas and New Year are not business days)."""
        accepted_at, due = sent["accepted_at"], sent["due"]
        expected = unix(BusinessCalendar().next_business_day_at(accepted_at, wall_time(12)))
        self.check(
            due == expected,
            f"gatewayn satte senast-tid {stockholm(due)} = nästa vardag kl. 12.00 efter "
            f"mottagandet {stockholm(accepted_at)} (Europe/Stockholm)",
        )

    def step6_rejected(self) -> None:
        self.say("6. Fel stadsområde: so-nordost avvisar ett jourärende med ett signerat skäl")
        message = self.send(
            "siv",
            "so-nordost",
            "after_hours_matter",
            "after_hours_handover",
            "--text-file",
            str(self.write("jour2.txt", "Ny kontakt via jourtelefonen i natt.")),
        ).json()["message_id"]
        self.open("nora", message)
        # Nora finds that the person belongs to another district (tillhörighet).
        answer = self.stafett("nora", "ack", message, "--reject", "wrong_district").json()
        self.check(answer["state"] == "rejected", "so-nordost avvisade med skälet wrong_district")
        status = self.stafett("siv", "status", message).json()["messages"][0]
        receipt = status["receipt"] or {}
        self.check(
            status["state"] == "rejected"
            and status["reason"] == "wrong_district"
            and status["reason_verified"] is True
            and receipt.get("recipient") == "so-nordost/nora/1",
            f"socialjouren ser det verifierade avvisandet: »{status['reason_label']}« "
            "(signerat av so-nordost/nora/1) och kan skicka till rätt stadsområde",
        )
        self.check(not self.blobs_left(), "innehållet är raderat från gatewayn även vid avvisning")

    def step7_withdrawal(self) -> None:
        self.say("7. Personen återkallar sitt samtycke medan ett meddelande väntar")
        pending = self.send(
            "sara",
            "so-nordost",
            "case_transfer",
            "transfer_to_district",
            "--text-file",
            str(self.write("komplettering.txt", "Komplettering.")),
        ).json()["message_id"]
        self.watcher = subprocess.Popen(
            [
                *tool("stafett"),
                "--home",
                str(self.home("sara")),
                "--json",
                "watch",
                "--kind",
                "outbox.withdrawn",
                "--count",
                "1",
                "--timeout",
                "30",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.runner.env,
            cwd=self.root,
        )
        time.sleep(1.0)  # let it connect; a late start still gets the event from the backlog
        answer = self.stafett(
            "sara", "consent", "withdraw", self.consent_id, "--reason", "subject_withdrew", "--yes"
        ).json()
        self.check(
            answer["messages_withdrawn"] == 1, "återkallat; 1 väntande meddelande drogs tillbaka"
        )
        out, _ = self.watcher.communicate(timeout=40)
        status = self.watcher.returncode
        self.watcher = None
        events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        self.check(
            status == 0 and any(e["message_id"] == pending for e in events),
            "SAV fick beskedet direkt över push-strömmen",
        )
        state = self.stafett("sara", "status", pending).json()["messages"][0]["state"]
        inbox = self.stafett("nora", "inbox").json()["messages"]
        self.check(
            state == "withdrawn" and all(m["message_id"] != pending for m in inbox),
            "meddelandet är tillbakadraget och borta ur so-nordosts inkorg",
        )
        again = self.send(
            "sara",
            "so-nordost",
            "case_transfer",
            "transfer_to_district",
            "--consent",
            self.consent_id,
            "--text-file",
            str(self.files / "komplettering.txt"),
            expect=1,
        )
        self.check("consent_withdrawn" in again.stderr, "nya försändelser under samtycket vägras")

    def step8_audit(self) -> None:
        self.say("10. Granskningsloggen verifieras, online och offline")
        audit = self.admin_cmd("audit-verify", "--gateway-key", self.gateway.verify_key).json()
        self.check(
            audit["ok"] is True, f"kedjan med {audit['size']} poster är obruten och signerad"
        )
        export = self.root / "granskning.json"
        self.admin_cmd("audit-export", "--out", str(export))
        known = self.admin / "known-checkpoints.json"
        offline = self.audit_verify(export, known)
        answer = json.loads(offline.stdout.strip().splitlines()[-1])
        self.check(
            offline.status == 0 and answer["ok"] is True and answer["remembered"] == 1,
            f"stafett-keys audit verify (utan nätverk): {answer['size']} poster; kontrollpunkten "
            "sparas så att en senare omskriven historik upptäcks",
        )
        doc = json.loads(export.read_text())
        doc["entries"][3]["event"] = "message_handed_over"  # an "improved" history
        tampered = self.root / "granskning-andrad.json"
        tampered.write_text(json.dumps(doc))
        caught = self.audit_verify(tampered, known)
        line = caught.stderr.strip().splitlines()[-1] if caught.stderr.strip() else ""
        self.check(
            caught.status == 1 and "(edited)" in line,
            f"en ändrad kopia avslöjas: {line.removeprefix('stafett-keys: error: ')}",
        )

    def run(self) -> None:
        self.setup()
        self.step1_consent()
        self.step2_threat_assessment()
        self.step3_case_transfer()
        self.step4_refused()
        self.step5_after_hours()
        self.step6_rejected()
        self.step7_withdrawal()
        handed = self.step_rotation(8)
        self.step_revocation(9, handed)
        self.step8_audit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clients.demo.flows", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    parser.add_argument("--verbose", action="store_true", help="show every command")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="stafett-demo-"))
    demo = Demo(root, verbose=args.verbose)
    started = time.monotonic()
    ok = False
    try:
        demo.run()
        ok = True
    except DemoFailed as exc:
        print(f"   ✗ {exc}", file=sys.stderr, flush=True)
        print(f"DEMO MISSLYCKADES (gatewayns logg: {root / 'gateway.log'})", file=sys.stderr)
        return 1
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError) as exc:
        print(f"   ✗ oväntat fel: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        demo.close()
        # A failed run keeps its directory: the gateway log says what the gateway saw.
        if ok and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(
        f"Alla steg betedde sig som väntat ({time.monotonic() - started:.1f} s). "
        "Gatewayn är stoppad.",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
