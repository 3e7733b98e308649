"""Invitation codes: signed, compact, naming the practice and a pseudonym only; tampering and expiry refused."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from shared.domain.invitations import (
    CodeRefusal,
    Invitation,
    InvitationClaims,
    InvitationCodeError,
    InvitationSigner,
    invitation_capacity,
    invitation_text,
)

NOW = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
PERSON = "0123456789abcdef01234567"
CLAIMS = InvitationClaims("Y90001", PERSON, NOW + dt.timedelta(days=14))


def test_a_code_opens_to_what_was_sealed_and_is_short_and_url_safe() -> None:
    signer = InvitationSigner(b"k" * 32)
    code = signer.seal(CLAIMS)
    assert signer.open(code) == CLAIMS
    assert len(code) <= 70 and all(c.isalnum() or c in "._-" for c in code)
    assert "Y90001" in code and PERSON not in code  # the practice by name, the person by an encoded pseudonym


@pytest.mark.parametrize(("change", "reason"), [
    (lambda c: c.replace("Y90001", "Y90002"), CodeRefusal.FORGED),
    (lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"), CodeRefusal.FORGED),
    (lambda c: c.rsplit(".", 2)[0] + ".zzzzzzz." + c.rsplit(".", 1)[1], CodeRefusal.FORGED),
    (lambda c: c + ".x", CodeRefusal.MALFORMED),
    (lambda c: "g2" + c[2:], CodeRefusal.MALFORMED),
    (lambda c: c.replace(".", "!", 1), CodeRefusal.MALFORMED),
])
def test_a_changed_code_is_refused(change: object, reason: CodeRefusal) -> None:
    signer = InvitationSigner(b"k" * 32)
    with pytest.raises(InvitationCodeError) as refused:
        signer.open(change(signer.seal(CLAIMS)))  # type: ignore[operator]
    assert refused.value.reason == reason


def test_another_key_refuses_a_code_and_a_previous_key_still_opens_it() -> None:
    old, new = InvitationSigner(b"o" * 32), InvitationSigner(b"n" * 32, previous_keys=(b"o" * 32,))
    code = old.seal(CLAIMS)
    with pytest.raises(InvitationCodeError):
        InvitationSigner(b"n" * 32).open(code)
    assert new.open(code) == CLAIMS


def test_status_and_expiry() -> None:
    invitation = Invitation("Y90001", PERSON, "9990000018", "+447700900123", "list", NOW, NOW + dt.timedelta(days=14))
    assert invitation.status(NOW) == "open"
    assert invitation.status(NOW + dt.timedelta(days=14)) == "expired"
    assert invitation.claims().expired(NOW + dt.timedelta(days=14))
    assert dataclasses.replace(invitation, booked_reference="ABCD1234").status(NOW + dt.timedelta(days=30)) == "booked"


def test_the_cap_is_free_places_times_the_factor_less_open_invitations_and_the_limit() -> None:
    assert invitation_capacity(10, 3, 0, None) == 30
    assert invitation_capacity(10, 3, 25, None) == 5
    assert invitation_capacity(10, 3, 40, None) == 0
    assert invitation_capacity(10, 3, 0, 7) == 7
    assert invitation_capacity(0, 3, 0, 7) == 0


def test_the_text_carries_the_link_and_the_last_day_and_nothing_personal() -> None:
    text = invitation_text("Riverside Surgery", "https://book.example/invite/g1.abc", NOW + dt.timedelta(days=14))
    assert "https://book.example/invite/g1.abc" in text and "Sunday 15 March 2026" in text
    assert text.isascii()
