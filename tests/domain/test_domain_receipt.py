"""Handover receipts: round trip, tamper evidence, binding to one envelope, schema."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from domain_factories import NOW, load_schema

from keys.canonical import b64d, b64e, canonical_json, hash32
from keys.errors import ReceiptInvalid, ReceiptMismatch, ReceiptSignatureInvalid, SignatureInvalid
from keys.receipt import FIELDS, SIG_DOMAIN, make_receipt, parse_receipt, verify_receipt

KEY = SigningKey = None  # placeholder replaced below (keeps imports sorted for ruff)
