"""The config container: small documents every instance reads, such as the campaign policy."""

from __future__ import annotations

import datetime as dt

from azure.core import MatchConditions
from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import CosmosHttpResponseError, CosmosResourceExistsError, CosmosResourceNotFoundError

from shared.domain.policy import CampaignPolicy
from shared.ports import StoredPolicy, VersionConflictError


class CosmosPolicyStore:
    """The policy as one document in the config container, replaced conditionally on its etag."""

    DOC_ID = "campaign-policy"

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def load(self) -> StoredPolicy | None:
        try:
            doc = await self._container.read_item(self.DOC_ID, partition_key=self.DOC_ID)
        except CosmosResourceNotFoundError:
            return None
        return StoredPolicy(policy=CampaignPolicy.model_validate(doc["policy"]), version=int(doc["version"]),
                            updated_at=dt.datetime.fromisoformat(doc["updatedAt"]), etag=doc.get("_etag"))

    async def save(self, policy: CampaignPolicy, previous: StoredPolicy | None, now: dt.datetime,
                   updated_by: str) -> StoredPolicy:
        version = (previous.version if previous else 0) + 1
        doc = {"id": self.DOC_ID, "policy": policy.model_dump(mode="json", by_alias=True), "version": version,
               "updatedAt": now.isoformat(), "updatedBy": updated_by}
        try:
            if previous is None or previous.etag is None:
                saved = await self._container.create_item(doc)
            else:
                saved = await self._container.replace_item(self.DOC_ID, doc, etag=previous.etag,
                                                           match_condition=MatchConditions.IfNotModified)
        except CosmosResourceExistsError:
            raise VersionConflictError from None
        except CosmosHttpResponseError as error:
            if error.status_code == 412:
                raise VersionConflictError from None
            raise
        return StoredPolicy(policy=policy, version=version, updated_at=now, etag=saved.get("_etag"))
