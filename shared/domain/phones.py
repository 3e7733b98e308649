"""Mobile numbers the platform will text: UK mobiles only, in E.164.

Every text costs money and lands on somebody's phone, so the number a request names is held to what
a national programme needs: a UK mobile (07xxx). Landlines, pagers and personal numbers (070, 076),
premium and shared-cost ranges, Crown dependency and international numbers are refused, so nobody
can pump paid texts to ranges that pay the sender back, or to numbers abroad.
"""

from __future__ import annotations

import re

import phonenumbers

# Ofcom reserves 07700 900000-900999 for drama: never issued, so demo data and tests use it and can
# never text a real person. libphonenumber calls the range invalid, so it is accepted by name here.
_OFCOM_DRAMA_MOBILES = re.compile(r"^\+447700900\d{3}$")


def parse_mobile(value: str) -> phonenumbers.PhoneNumber:
    """A phone number as written in the UK or in international form; ValueError when it is none."""
    if len(value) > 32:
        raise ValueError("not a phone number")
    try:
        return phonenumbers.parse(value, "GB")
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None


def e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_drama_mobile(formatted: str) -> bool:
    return _OFCOM_DRAMA_MOBILES.match(formatted) is not None


def uk_mobile(value: str) -> str:
    """The number in E.164 when it is a UK mobile; ValueError (a message free of the input) otherwise."""
    number = parse_mobile(value)
    formatted = e164(number)
    if is_drama_mobile(formatted):
        return formatted
    if phonenumbers.region_code_for_number(number) != "GB" or not phonenumbers.is_valid_number(number) \
            or phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.MOBILE:
        raise ValueError("not a UK mobile number")
    return formatted


def is_uk_mobile(value: str) -> bool:
    try:
        return uk_mobile(value) == value
    except ValueError:
        return False
