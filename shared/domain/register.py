"""A person as the national immunisation register holds them: identity, contact, flags and doses."""

from __future__ import annotations

import datetime as dt

from shared.domain.eligibility import Vaccination
from shared.domain.people import Flag
from shared.domain.policy import DomainModel


class RegisterRecord(DomainModel):
    """One person's register record. Built from already validated input (the API model or a stored document)."""

    nhs_number: str
    date_of_birth: dt.date
    given_name: str
    family_name: str
    postcode: str
    mobile: str | None = None
    email: str | None = None
    gp_practice_ods: str | None = None
    flags: tuple[Flag, ...] = ()
    vaccinations: tuple[Vaccination, ...] = ()
