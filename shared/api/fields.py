"""Field types shared by request models: validated and normalised at the edge, messages free of input."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, get_args

import phonenumbers
from pydantic import AfterValidator, BaseModel, Field, ValidationInfo

from shared.domain.nhs_number import normalise_nhs_number
from shared.domain.phones import e164, is_drama_mobile, parse_mobile, uk_mobile

_POSTCODE = re.compile(r"^(GIR ?0AA|[A-PR-UWYZ][A-HK-Y]?[0-9][0-9A-HJKMNPR-Y]? ?[0-9][ABD-HJLNP-UW-Z]{2})$")
_POSTCODE_DISTRICT = re.compile(r"^[A-PR-UWYZ][A-HK-Y]?[0-9][0-9A-HJKMNPR-Y]?$")
_ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")


def _postcode(value: str) -> str:
    compact = value.strip().upper().replace(" ", "")
    if not _POSTCODE.match(compact):
        raise ValueError("not a valid UK postcode")
    return f"{compact[:-3]} {compact[-3:]}"


def _district_only(value: str) -> str:
    """A search's postcode: the district only. A full postcode narrows a person down to a few addresses, and
    personal data never travels in a URL (docs/security.md, finding 10); the district is not personal data."""
    compact = value.strip().upper().replace(" ", "")
    if _POSTCODE_DISTRICT.match(compact):
        return compact
    if _POSTCODE.match(compact):
        raise ValueError("send the postcode district only (the part before the space, such as LS1), "
                         "never a full postcode in a URL")
    raise ValueError("not a valid UK postcode district")


def _postcode_or_district(value: str) -> str:
    compact = value.strip().upper().replace(" ", "")
    if _POSTCODE_DISTRICT.match(compact):
        return compact
    return _postcode(value)


def _mobile(value: str) -> str:
    """Any valid mobile (a register record's, a number for the STOP list); texts go to UK mobiles only."""
    number = parse_mobile(value)
    formatted = e164(number)
    if is_drama_mobile(formatted):
        return formatted
    if not phonenumbers.is_valid_number(number) or phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise ValueError("not a valid mobile number")
    return formatted


def _ods_code(value: str) -> str:
    code = value.strip().upper()
    if not _ODS_CODE.match(code):
        raise ValueError("not a valid ODS code")
    return code


# The OpenAPI document names what JSON Schema cannot say (a check digit, a valid number) as a `format`
# (docs/api.md, "Formats"); `json_schema_extra` changes only the document, never what is validated.
def _format(name: str, **schema: object) -> dict[str, object]:
    return {"format": name, **schema}


NhsNumber = Annotated[str, Field(max_length=20, json_schema_extra=_format("nhs-number", minLength=10)),
                      AfterValidator(normalise_nhs_number)]
Postcode = Annotated[str, Field(max_length=10, json_schema_extra=_format("uk-postcode")), AfterValidator(_postcode)]
PostcodeOrDistrict = Annotated[str, Field(max_length=10, json_schema_extra=_format("uk-postcode-or-district")),
                               AfterValidator(_postcode_or_district)]
PostcodeDistrict = Annotated[str, Field(max_length=10, json_schema_extra=_format("uk-postcode-district")),
                             AfterValidator(_district_only)]
Mobile = Annotated[str, Field(max_length=20, json_schema_extra=_format("mobile")), AfterValidator(_mobile)]
# A number the caller asks us to text (a booking's contact): UK mobiles only (shared/domain/phones.py).
UkMobile = Annotated[str, Field(max_length=20, json_schema_extra=_format("uk-mobile")), AfterValidator(uk_mobile)]
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
OdsCode = Annotated[str, Field(max_length=10, json_schema_extra=_format("ods-code")), AfterValidator(_ods_code)]
PersonName = Annotated[str, Field(min_length=1, max_length=100)]


# --- Values as JSON types ---------------------------------------------------------------------------

_ISO_DATE_START = re.compile(r"^\s*\d{4}-\d{2}-\d{2}")


def _kinds(annotation: Any) -> set[Any]:
    """The classes a field's type admits, under Optional, unions and Annotated alike."""
    if isinstance(annotation, type):
        return {annotation}
    return {kind for argument in get_args(annotation) for kind in _kinds(argument)}


def as_json_types(model: type[BaseModel], value: Any, info: ValidationInfo, *, text_numbers: bool = False) -> Any:
    """A field takes the JSON type the OpenAPI document gives it, not whatever pydantic could coerce:
    a date or date-time is ISO 8601 text (pydantic alone reads 0, or "0", as 1 January 1970), a number is
    a number (not true, nor text in a body) and a boolean is true or false. `text_numbers`: a query
    string, where every value is text."""
    field = model.model_fields.get(info.field_name or "")
    if field is None or value is None:
        return value
    kinds = _kinds(field.annotation) - {type(None)}
    if any(issubclass(kind, dt.date) for kind in kinds if isinstance(kind, type)) and not isinstance(value, dt.date):
        if not isinstance(value, str) or not _ISO_DATE_START.match(value):
            raise ValueError("give a date as YYYY-MM-DD (a time as ISO 8601, with its offset)")
    elif kinds and kinds <= {int, float}:
        if isinstance(value, bool) or (isinstance(value, str) and not text_numbers):
            raise ValueError("give a number")
    elif kinds == {bool} and not isinstance(value, bool) and not text_numbers:
        raise ValueError("give true or false")
    return value
