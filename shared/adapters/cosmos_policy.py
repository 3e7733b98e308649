"""The config container: small documents every instance reads, such as the campaign policy."""

from __future__ import annotations

import datetime as dt

from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import CosmosResourceNotFoundError

from shared.adapters.cosmos_writes import create_or_replace
from shared.domain.policy import CampaignPolicy
from shared.ports.policy import StoredPolicy


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
        saved = await create_or_replace(self._container, doc, previous.etag if previous else None)
        return StoredPolicy(policy=policy, version=version, updated_at=now, etag=saved.get("_etag"))
