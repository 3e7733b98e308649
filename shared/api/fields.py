"""Field types shared by request models: validated and normalised at the edge, messages free of input."""

from __future__ import annotations

import re
from typing import Annotated

import phonenumbers
from pydantic import AfterValidator, Field

from shared.domain.nhs_number import normalise_nhs_number

_POSTCODE = re.compile(r"^(GIR ?0AA|[A-PR-UWYZ][A-HK-Y]?[0-9][0-9A-HJKMNPR-Y]? ?[0-9][ABD-HJLNP-UW-Z]{2})$")
_POSTCODE_DISTRICT = re.compile(r"^[A-PR-UWYZ][A-HK-Y]?[0-9][0-9A-HJKMNPR-Y]?$")
_ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")


def _postcode(value: str) -> str:
    compact = value.strip().upper().replace(" ", "")
    if not _POSTCODE.match(compact):
        raise ValueError("not a valid UK postcode")
    return f"{compact[:-3]} {compact[-3:]}"


def _postcode_or_district(value: str) -> str:
    compact = value.strip().upper().replace(" ", "")
    if _POSTCODE_DISTRICT.match(compact):
        return compact
    return _postcode(value)


# Ofcom reserves 07700 900000-900999 for drama: never issued, so demo data and tests use it and can
# never text a real person. libphonenumber calls the range invalid, so it is accepted by name here.
_OFCOM_DRAMA_MOBILES = re.compile(r"^\+447700900\d{3}$")


def _mobile(value: str) -> str:
    try:
        number = phonenumbers.parse(value, "GB")
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if _OFCOM_DRAMA_MOBILES.match(e164):
        return e164
    if not phonenumbers.is_valid_number(number) or phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise ValueError("not a valid mobile number")
    return e164


def _ods_code(value: str) -> str:
    code = value.strip().upper()
    if not _ODS_CODE.match(code):
        raise ValueError("not a valid ODS code")
    return code


NhsNumber = Annotated[str, Field(max_length=20), AfterValidator(normalise_nhs_number)]
Postcode = Annotated[str, Field(max_length=10), AfterValidator(_postcode)]
PostcodeOrDistrict = Annotated[str, Field(max_length=10), AfterValidator(_postcode_or_district)]
Mobile = Annotated[str, Field(max_length=20), AfterValidator(_mobile)]
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
OdsCode = Annotated[str, Field(max_length=10), AfterValidator(_ods_code)]
PersonName = Annotated[str, Field(min_length=1, max_length=100)]
