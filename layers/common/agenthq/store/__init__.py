"""The single DynamoDB table: item models (PynamoDB) and key rules.

See docs/data-model.md for the key design. The rule that matters most: every
item a workspace owns has a partition key starting ``WS#<workspace_id>``, and
code reaches such items only through functions that take the workspace id of
the authenticated principal.
"""

from agenthq.store.base import (
    BaseItem,
    configure,
    get_many,
    global_scope,
    partition_page,
    retry_transaction,
    tenant_scope,
    transaction,
    ws_pk,
)

__all__ = ["BaseItem", "configure", "get_many", "global_scope", "partition_page", "retry_transaction", "tenant_scope", "transaction",
           "ws_pk"]
