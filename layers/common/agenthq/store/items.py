"""Every item type of the table. Key layout: docs/data-model.md."""

from __future__ import annotations

from agenthq.store.base import BaseItem


class HealthProbe(BaseItem, discriminator="HealthProbe"):
    """A fixed key the health check reads; it need not exist."""

    @classmethod
    def probe(cls) -> None:
        """One consistent GetItem round trip; raises if DynamoDB can't answer."""
        try:
            cls.get("HEALTH", "HEALTH", consistent_read=True)
        except cls.DoesNotExist:
            pass
