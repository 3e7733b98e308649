"""Public site routes: sites near a postcode, and a site's free appointment slots."""

from __future__ import annotations

import re

import azure.functions as func

from functions.http import endpoint, json_response, parse_query
from shared.api.problems import not_found
from shared.api.site_models import SiteSearchAnswer, SiteSearchQuery, SiteSummary, SlotQuery, SlotsAnswer, SlotSummary
from shared.composition import services
from shared.services.sites.search import SiteSearch, SlotRange

bp = func.Blueprint()

# What a site id may be (shared.domain.sites.SiteId); anything else names no site.
SITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def site_id_of(req: func.HttpRequest) -> str:
    site_id = str(req.route_params.get("siteId", ""))
    if not SITE_ID.match(site_id):
        raise not_found("No such site")
    return site_id


@bp.route(route="sites", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def search_sites(req: func.HttpRequest) -> func.HttpResponse:
    query = parse_query(req, SiteSearchQuery)
    found = await services().site_search.search(
        SiteSearch(postcode=query.postcode, radius_km=query.radius_km, limit=query.limit, product=query.product))
    return json_response(SiteSearchAnswer(sites=[
        SiteSummary(site_id=near.site.site_id, name=near.site.name, type=near.site.type, distance_km=near.distance_km,
                    products=list(near.site.products), next_available_date=near.next_available_date,
                    postcode=near.site.postcode)
        for near in found]))


@bp.route(route="sites/{siteId}/slots", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def site_slots(req: func.HttpRequest) -> func.HttpResponse:
    site_id = site_id_of(req)
    query = parse_query(req, SlotQuery)
    free = await services().site_search.slots(site_id, SlotRange(first=query.from_, last=query.to,
                                                                 product=query.product))
    return json_response(SlotsAnswer(slots=[
        SlotSummary(slot_id=s.slot_id, start=s.start, end=s.end, product=s.product, remaining=s.remaining)
        for s in free]))
