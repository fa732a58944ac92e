"""A workspace never loses its last owner, even when its owners leave, are removed or are
demoted at the same moment (issue 17, hole 10): the check that another owner stays and the
change are one transaction, so of two owners acting on each other at once one wins."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest

from agenthq import workspaces
from agenthq.context import ROLE_SCOPES, Principal, PrincipalKind, Role
from agenthq.errors import Conflict
from agenthq.services import get_services
from agenthq.store import BaseItem, tenant_scope
from tests.support import PASSWORD, Tenant, bearer, client_for, signup, table_items

ROUNDS = 4


def two_owners(api) -> tuple[Tenant, dict[str, str], str]:
    """A pro workspace whose owner made a colleague an owner too: (owner, the colleague's headers, their id)."""
    owner = signup(api, tag="owner", tier="pro")
    colleague = signup(api, tag="co-owner", workspace_name="Co-owner's own")
    added = owner.post("/members", json={"email": colleague.email, "role": "owner"})
    assert added.status_code in (200, 201, 202), added.text
    login = api.post("/auth/login", json={"email": colleague.email, "password": PASSWORD,
                                          "workspace_id": owner.workspace_id})
    assert login.status_code == 200, login.text
    return owner, bearer(login.json()["access_token"]), colleague.user_id


def at_once(cloud, *requests: tuple[str, str, dict[str, str], dict[str, Any] | None]) -> list[int]:
    """The requests, each from its own client, released together; their statuses in order."""
    start = threading.Barrier(len(requests))

    def send(request: tuple[str, str, dict[str, str], dict[str, Any] | None]) -> int:
        method, path, headers, body = request
        with client_for(cloud) as client:
            start.wait()
            return client.request(method, path, headers=headers, json=body).status_code

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests))


@pytest.mark.parametrize("how", ["both leave", "each removes the other", "each demotes the other"])
def test_two_owners_acting_at_once_leave_one_owner(cloud, api, how):
    for _ in range(ROUNDS):
        owner, colleague_headers, colleague_id = two_owners(api)
        mine, theirs = owner.path(f"/members/{owner.user_id}"), owner.path(f"/members/{colleague_id}")
        if how == "both leave":
            requests = [("DELETE", mine, owner.headers, None), ("DELETE", theirs, colleague_headers, None)]
        elif how == "each removes the other":
            requests = [("DELETE", theirs, owner.headers, None), ("DELETE", mine, colleague_headers, None)]
        else:
            requests = [("PATCH", theirs, owner.headers, {"role": "admin"}),
                        ("PATCH", mine, colleague_headers, {"role": "admin"})]
        statuses = at_once(cloud, *requests)
        won = [s for s in statuses if s in (200, 204)]
        assert len(won) == 1 and set(statuses) - {200, 204} <= {401, 403, 404, 409}, (how, statuses)
        survivors = _owners_in_table(cloud, owner.workspace_id)
        assert len(survivors) == 1, (how, statuses, survivors)



def _owners_in_table(cloud, workspace_id: str) -> list[str]:
    return [m["user_id"] for m in table_items(cloud, type="Member", workspace_id=workspace_id) if m["role"] == "owner"]


class TransactionsMeet:
    """The first TransactWriteItems of each of ``parties`` threads waits until all of them reach theirs, then
    they go together — the moment a check-then-write race needs; later ones (a retry) pass at once. Installed
    as a subclass of the store's connection class on the workspace's connection."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=15)
        self.met: set[int] = set()
        self.lock = threading.Lock()

    def wait_if_first(self) -> None:
        with self.lock:
            first = threading.get_ident() not in self.met
            self.met.add(threading.get_ident())
        if first:
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                pass

    @contextmanager
    def hooked(self, workspace_id: str) -> Iterator[None]:
        with tenant_scope(workspace_id):  # the workspace's connection (its tenant role's, where one is set)
            connection = BaseItem._get_connection().connection
        real = type(connection)
        meet = self

        class Meeting(real):  # type: ignore[misc,valid-type]
            def dispatch(self, operation_name: str, operation_kwargs: dict[str, Any]) -> dict[str, Any]:
                if operation_name == "TransactWriteItems":
                    meet.wait_if_first()
                return dict(super().dispatch(operation_name, operation_kwargs))

        connection.__class__ = Meeting
        try:
            yield
        finally:
            connection.__class__ = real


@pytest.mark.parametrize("how", ["both leave", "each demotes the other"])
def test_two_owners_whose_checks_meet_leave_one_owner(cloud, api, how):
    """The same race made certain, one level down: the two changes run in this process's threads (where
    DynamoDB is reached through the store's shared connection) and their first transactions are sent
    together. On main both checks passed before either write, and the workspace had no owner."""
    owner, _, colleague_id = two_owners(api)
    wid = owner.workspace_id
    as_owner = Principal(workspace_id=wid, subject=owner.user_id, kind=PrincipalKind.user, role=Role.owner,
                         scopes=ROLE_SCOPES[Role.owner])
    as_colleague = Principal(workspace_id=wid, subject=colleague_id, kind=PrincipalKind.user, role=Role.owner,
                             scopes=ROLE_SCOPES[Role.owner])
    if how == "both leave":
        changes = [lambda: workspaces.remove_member(get_services(), as_owner, owner.user_id),
                   lambda: workspaces.remove_member(get_services(), as_colleague, colleague_id)]
    else:
        demote = workspaces.MemberUpdate(role=Role.admin)
        changes = [lambda: workspaces.change_member_role(get_services(), as_owner, colleague_id, demote),
                   lambda: workspaces.change_member_role(get_services(), as_colleague, owner.user_id, demote)]
    meet = TransactionsMeet(2)

    def attempt(change: Any) -> str:
        try:
            change()
            return "done"
        except Conflict:
            return "conflict"

    with meet.hooked(wid), ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(attempt, changes))
    assert len(meet.met) == 2, "both changes reached a transaction"
    assert outcomes == ["conflict", "done"], (how, outcomes)
    assert len(_owners_in_table(cloud, wid)) == 1
