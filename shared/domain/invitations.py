"""GP practice invitations: the signed code a text carries, the invitation's state, and the cap on sending.

A code names the practice (its ODS code, not personal data) and the person by a keyed pseudonym, and
says when it expires; an HMAC-SHA256 over those, cut to 128 bits, makes it unguessable and tamper-evident.
The NHS number is never in it: the invitation record, found by practice and pseudonym, holds that.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal

from shared.domain.messages import london_time

CODE_VERSION: Final = "g1"
_SIGNATURE_BYTES: Final = 16
_ODS: Final = re.compile(r"^[A-Z0-9]{3,10}$")
_PERSON: Final = re.compile(r"^[0-9a-f]{24}$")
MAX_CODE_LENGTH: Final = 100

InvitationStatus = Literal["open", "booked", "expired"]


class CodeRefusal(StrEnum):
    MALFORMED = "malformed"
    FORGED = "forged"


class InvitationCodeError(Exception):
    """A code this service did not issue, or that was changed; `reason` is safe to log."""

    def __init__(self, reason: CodeRefusal) -> None:
        super().__init__(f"invitation code {reason}")
        self.reason = reason


@dataclass(frozen=True)
class InvitationClaims:
    ods_code: str
    person: str  # the keyed pseudonym of the NHS number (24 hex digits)
    expires_at: dt.datetime

    def expired(self, now: dt.datetime) -> bool:
        return now >= self.expires_at


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
        if not value:
            return out


@dataclass(frozen=True)
class InvitationSigner:
    """Seals and opens invitation codes: `g1.{ODS}.{person}.{expiry}.{signature}`, about 60 URL-safe characters.

    `previous_keys` still open codes (never seal), so the key can be rotated without refusing codes already
    sent; without one, a rotation refuses the open codes (they last GP_INVITE_DAYS at most).
    """

    key: bytes
    previous_keys: tuple[bytes, ...] = field(default=())

    def _mac(self, key: bytes, payload: str) -> bytes:
        return hmac.new(key, f"gp-invitation.{payload}".encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES]

    def seal(self, claims: InvitationClaims) -> str:
        person = _b64(bytes.fromhex(claims.person))
        payload = f"{CODE_VERSION}.{claims.ods_code}.{person}.{_b36(int(claims.expires_at.timestamp()))}"
        return f"{payload}.{_b64(self._mac(self.key, payload))}"

    def open(self, code: str) -> InvitationClaims:
        """The claims of a code this signer sealed (expired or not); refused otherwise."""
        parts = code.split(".")
        if len(code) > MAX_CODE_LENGTH or len(parts) != 5 or parts[0] != CODE_VERSION:
            raise InvitationCodeError(CodeRefusal.MALFORMED)
        payload, signature = ".".join(parts[:4]), parts[4]
        try:
            given = _unb64(signature)
            person = _unb64(parts[2]).hex()
            expires = int(parts[3], 36)
        except (binascii.Error, ValueError):
            raise InvitationCodeError(CodeRefusal.MALFORMED) from None
        if not any(hmac.compare_digest(given, self._mac(key, payload)) for key in (self.key, *self.previous_keys)):
            raise InvitationCodeError(CodeRefusal.FORGED)
        if not _ODS.match(parts[1]) or not _PERSON.match(person) or not 0 < expires < 2**40:
            raise InvitationCodeError(CodeRefusal.MALFORMED)
        return InvitationClaims(parts[1], person, dt.datetime.fromtimestamp(expires, dt.UTC))


@dataclass(frozen=True)
class Invitation:
    """One practice's invitation to one person: at most one record per person and practice."""

    ods_code: str
    person: str
    nhs_number: str
    mobile: str
    file_name: str
    created_at: dt.datetime
    expires_at: dt.datetime
    booked_reference: str | None = None
    texted: bool = False
    etag: str | None = None

    def status(self, now: dt.datetime) -> InvitationStatus:
        if self.booked_reference is not None:
            return "booked"
        return "expired" if now >= self.expires_at else "open"

    def claims(self) -> InvitationClaims:
        return InvitationClaims(self.ods_code, self.person, self.expires_at)

    @property
    def delivery_key(self) -> str:
        """Names this invitation for its text's delivery record: a new invitation after expiry is a new text."""
        return f"{self.ods_code}.{self.person}.{int(self.created_at.timestamp())}"


def invitation_expiry(now: dt.datetime, days: int) -> dt.datetime:
    """When an invitation made now expires: `days` later, to the second (codes carry whole seconds)."""
    return (now + dt.timedelta(days=days)).replace(microsecond=0)


def invitation_capacity(free_places: int, factor: float, open_invitations: int, limit: int | None) -> int:
    """How many more people may be invited now: the practice's free places times the factor, less those
    already holding an open invitation, and no more than the caller's limit."""
    room = max(0, int(free_places * factor) - open_invitations)
    return room if limit is None else min(room, max(0, limit))


def invitation_text(practice_name: str, link: str, expires_at: dt.datetime) -> str:
    """The text: plain GSM characters, no personal data, the link and the day it stops working."""
    until = london_time(expires_at).split(" at ")[0]
    return (f"{practice_name} invites you to book your COVID-19 vaccination at the practice's own clinic.\n"
            f"Book at {link} by {until}.")
