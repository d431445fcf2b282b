"""The units' names as a social worker says them.

The verified directory's ``create_unit`` entry carries a name, signed by a security
admin, and that name wins. Where an admin left the name as just the code (``SAV``,
``SO-NORDOST``), the city's names below are shown instead, so the page never asks an
officer to recognise a code. The code is always shown next to the name (it is what
the CLI and the consent form use).
"""

from __future__ import annotations

from keys.protocol.directory import Directory

# The units of the city's flows (``make demo``); a directory name says more.
CITY_UNITS: dict[str, str] = {
    "sav": "Samlad avhopparverksamhet",
    "so-nordost": "Socialtjänsten Nordost",
    "so-hisingen": "Socialtjänsten Hisingen",
    "so-centrum": "Socialtjänsten Centrum",
    "so-sydvast": "Socialtjänsten Sydväst",
    "socialjour": "Socialjouren",
    "las-storgoteborg": "LAS Storgöteborg",
}


def unit_name(code: str, directory_name: str | None) -> str:
    name = (directory_name or "").strip()
    if name and name.casefold() != code.casefold():
        return name
    return CITY_UNITS.get(code, name or code)


def unit_names(directory: Directory) -> dict[str, str]:
    return {u: unit_name(u, rec.name) for u, rec in directory.units.items()}
