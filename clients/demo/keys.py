"""The key lifecycle steps of ``make demo``: a rotation and a revocation, each checked.

Both go through the shipped tools only: the officer's ``stafett device rotate``, the
admin's ``stafett-keys device rotate | min-version | key destroy | device revoke`` and
``stafett admin push-directory`` (the command ``stafett-keys`` prints to publish).
"""

from __future__ import annotations

from pathlib import Path

from clients.demo.base import DemoBase
from clients.demo.support import DEMO_PASSPHRASE, DemoFailed
from keys.crypto.keystore import load_keystore
from keys.errors import KeysError

NORA = "so-nordost/nora"


class DemoKeys(DemoBase):
    def jour(self, name: str, text: str) -> dict[str, object]:
        """Socialjouren sends an after-hours matter to so-nordost (the consent of step 5)."""
        path = str(self.write(name, text))
        args = ("after_hours_matter", "after_hours_handover", "--text-file", path)
        return dict(self.send("siv", "so-nordost", *args).json())

    def publish(self, signed: str) -> None:
        """Publish what ``stafett-keys`` just signed, the way it says to."""
        hint = f"stafett admin push-directory --keys-dir {self.admin.resolve()}"
        if hint not in signed:
            raise DemoFailed(f"stafett-keys did not say how to publish: {signed.strip()}")
        self.admin_cmd("push-directory")

    def keystore_versions(self, who: str) -> list[int]:
        try:
            store = load_keystore(self.home(who) / "keys.crypto.keystore", DEMO_PASSPHRASE)
        except KeysError as exc:
            raise DemoFailed(f"{who}'s keystore cannot be read: {exc}") from None
        return sorted(store.keypairs)

    def read_text(self, who: str, message_id: str) -> str:
        return (Path(self.open(who, message_id)["path"]) / "message.txt").read_text()

    def step_rotation(self, number: int) -> str:
        """Returns a message handed over with key 2 (its receipt outlives the revocation)."""
        self.say(f"{number}. so-nordost/nora byter nyckel medan ett meddelande väntar")
        before = self.jour("fore-bytet.txt", "Skickat före nyckelbytet.")
        self.check(
            before["recipients"] == [f"{NORA}/1"], "ett jourärende väntar, krypterat till nyckel 1"
        )
        request = self.root / "nora-rotation.json"
        rotated = self.stafett("nora", "device", "rotate", "--request-out", str(request)).json()
        self.publish(self.keys("device", "rotate", str(request)).stdout)
        self.check(
            rotated["kid"] == f"{NORA}/2",
            "nora skapade nyckel 2; administratören signerade bytet och publicerade katalogen",
        )
        after = self.jour("efter-bytet.txt", "Skickat efter nyckelbytet.")
        self.check(after["recipients"] == [f"{NORA}/2"], "nästa meddelande krypteras till nyckel 2")
        self.check(
            self.read_text("nora", str(after["message_id"])) == "Skickat efter nyckelbytet."
            and self.read_text("nora", str(before["message_id"])) == "Skickat före nyckelbytet.",
            "nora öppnar det nya med nyckel 2 och det väntande med nyckel 1",
        )
        for message in (before, after):
            self.stafett("nora", "ack", str(message["message_id"]))
        self.keys("device", "min-version", NORA, "2")
        self.publish(self.keys("key", "destroy", NORA, "1").stdout)
        self.stafett("nora", "directory")  # any command syncs; the keystore shreds key 1
        self.check(
            self.keystore_versions("nora") == [2],
            "inget väntar längre på nyckel 1: den förstörs och noras nyckelfil glömmer den",
        )
        # Socialjouren's earlier receipts (steps 5 and 6) were signed with key 1.
        messages = self.stafett("siv", "status").json()["messages"]
        receipts = [m["receipt"] for m in messages if m["receipt"]]
        signed_by_1 = [r for r in receipts if r["recipient"] == f"{NORA}/1"]
        self.check(
            bool(signed_by_1)
            and all(r["verified"] and r["key_since"] == "destroyed" for r in signed_by_1),
            f"{len(signed_by_1)} kvitton signerade med nyckel 1 är fortfarande bevis "
            "(verifierade mot katalogen som den såg ut då)",
        )
        return str(after["message_id"])

    def step_revocation(self, number: int, handed: str) -> None:
        self.say(f"{number}. noras dator tappas bort: nyckeln spärras medan ett meddelande väntar")
        pending = str(self.jour("sparr.txt", "Väntar när datorn försvinner.")["message_id"])
        revoked = self.keys("device", "revoke", NORA, "--reason", "lost").stdout
        self.publish(revoked)
        self.check(
            f"--device {NORA} --key-version 3" in revoked,
            "spärrad och publicerad; stafett-keys säger hur nora skrivs in igen (nyckel 3)",
        )
        status = self.stafett("siv", "status").json()["messages"]
        by_id = {m["message_id"]: m for m in status}
        receipt = by_id[handed]["receipt"] or {}
        self.check(
            by_id[pending]["exposed_at"] is not None and by_id[handed]["exposed_at"] is None,
            "socialjouren ser att det väntande meddelandet är RÖJT (det överlämnade är det inte)",
        )
        self.check(
            receipt.get("verified") is True and receipt.get("key_since") == "revoked",
            "kvittot från före spärren: verifierat — nyckeln har senare spärrats",
        )
        refused = self.stafett("nora", "inbox", expect=1)
        self.check(
            "device_revoked" in refused.stderr, "den spärrade datorn får veta att den är spärrad"
        )
        nobody = self.send(
            "siv",
            "so-nordost",
            "after_hours_matter",
            "after_hours_handover",
            "--text-file",
            str(self.files / "sparr.txt"),
            expect=1,
        )
        self.check(
            "recipient_unit_no_device" in nobody.stderr,
            "so-nordost har ingen aktiv enhet: nya försändelser vägras med en egen kod",
        )
