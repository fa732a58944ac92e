"""The offboarding job's steps, called as the state machine calls them: each
works for one time slice and hands back where to go on; only a workspace being
offboarded is touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agenthq import ids, offboarding
from agenthq.offboarding import OffboardingStepRejected, run_step
from agenthq.services import Services, get_services
from agenthq.store import tenant_scope
from agenthq.store.items import Note, OffboardingJob, Quota, Run, Workspace
from tests.support import signup, workspace_leftovers


class TickingClock:
    """Every reading is ``step`` seconds after the last: a slice of 60 s ends at its first check after a deletion."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 1_900_000_000.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def _being_offboarded(workspace_id: str) -> None:
    """What ``offboarding.start`` writes, without starting the execution (the test plays it)."""
    job = OffboardingJob(status="running", attempt=1, started_at=datetime.now(UTC), started_by="test",
                         items_deleted=0)
    with tenant_scope(workspace_id):
        Workspace(*Workspace.key(workspace_id)).update(actions=[Workspace.deleting.set(True),
                                                                Workspace.offboarding.set(job)])


def test_delete_works_in_time_slices_and_hands_back_a_cursor(cloud, api):
    owner = signup(api, tag="sliced")
    get_services()
    with tenant_scope(owner.workspace_id):
        for i in range(230):  # more than two pages of the workspace's partition
            Note(*Note.key(owner.workspace_id, f"note-{i:03d}"), name=f"note-{i:03d}", content="x",
                 updated_at=datetime.now(UTC)).save()
        # an item only updates ever wrote: it has no type, and goes too
        Quota(*Quota.key(owner.workspace_id, "DAY#2001-01-01")).update(actions=[Quota.runs.add(1)])
    _being_offboarded(owner.workspace_id)
    progress = run_step(get_services(), {"step": "revoke", "workspace_id": owner.workspace_id}, lambda: 100.0)
    assert progress == {"phase": "cancel_runs", "cursor": None}
    progress = run_step(get_services(), {"step": "cancel_runs", "workspace_id": owner.workspace_id}, lambda: 100.0)
    assert progress == {"phase": "delete", "cursor": None}
    services = Services(get_services().settings, clock=TickingClock(step=61.0))  # one page per slice
    slices, cursors = 0, []
    while progress["phase"] == "delete":
        slices += 1
        progress = run_step(services, {"step": "delete", "workspace_id": owner.workspace_id,
                                       "cursor": progress["cursor"]}, lambda: 100.0)
        cursors.append(progress["cursor"])
        assert slices < 50
    assert slices > 2 and any(c and c.get("after") for c in cursors[:-1]), cursors
    assert progress["phase"] == "finish" and progress["cursor"]["items_deleted"] >= 232
    left = workspace_leftovers(cloud, owner.workspace_id)
    assert {(i["pk"], i["sk"]) for i in left} == {(f"WS#{owner.workspace_id}", "META"),
                                                   ("WORKSPACES", f"WS#{owner.workspace_id}")}

    done = run_step(services, {"step": "finish", "workspace_id": owner.workspace_id,
                               "cursor": progress["cursor"]}, lambda: 100.0)
    assert done == {"phase": "done", "cursor": None, "items_deleted": progress["cursor"]["items_deleted"] + 2}
    assert workspace_leftovers(cloud, owner.workspace_id) == []
    # a step retried after the end finds nothing and says so
    assert run_step(services, {"step": "delete", "workspace_id": owner.workspace_id}, lambda: 100.0) == {
        "phase": "finish", "cursor": None}


@pytest.mark.parametrize("step", ["revoke", "cancel_runs", "delete", "finish"])
def test_a_workspace_that_is_not_being_offboarded_is_never_touched(cloud, api, step):
    owner = signup(api, tag="staying")
    with pytest.raises(OffboardingStepRejected):
        run_step(get_services(), {"step": step, "workspace_id": owner.workspace_id}, lambda: 100.0)
    assert owner.get().status_code == 200


def test_malformed_steps_are_refused(cloud):
    for event in ({"step": "explode", "workspace_id": "01JD0000000000000000000000"},
                  {"step": "delete", "workspace_id": "WS#other"}, {"step": "delete"}):
        with pytest.raises(OffboardingStepRejected):
            run_step(get_services(), event, lambda: 100.0)
    assert offboarding.job_name("01JD0000000000000000000000", 2) == "offboarding-01JD0000000000000000000000-2"


def test_runs_that_do_not_end_are_stopped_after_the_wait_and_deleted_all_the_same(cloud, api):
    """A run whose execution is gone (a restarted local cloud forgets them) never ends by itself."""
    owner = signup(api, tag="stuck")
    get_services()
    now = datetime.now(UTC)
    run_id = ids.new_id()
    with tenant_scope(owner.workspace_id):
        Run(*Run.key(owner.workspace_id, run_id), id=run_id, workspace_id=owner.workspace_id, agent_id=ids.new_id(),
            status="running", input_preview="…", created_by="test", created_at=now, updated_at=now,
            deadline=now + timedelta(hours=1)).save()
    _being_offboarded(owner.workspace_id)
    step = {"step": "cancel_runs", "workspace_id": owner.workspace_id}

    waiting = run_step(get_services(), step, lambda: 100.0)
    assert waiting["phase"] == "wait_for_runs" and waiting["cursor"]["runs"] == [run_id]
    with tenant_scope(owner.workspace_id):
        assert Run.get(*Run.key(owner.workspace_id, run_id)).cancel_requested  # asked, as POST …/cancel asks
    still = run_step(get_services(), {**step, "cursor": waiting["cursor"]}, lambda: 100.0)
    assert still["phase"] == "wait_for_runs" and still["cursor"] == waiting["cursor"]
    long_ago = (now - offboarding.CANCEL_WAIT - timedelta(seconds=1)).isoformat()
    stopped = run_step(get_services(), {**step, "cursor": {**waiting["cursor"], "since": long_ago}}, lambda: 100.0)
    assert stopped == {"phase": "delete", "cursor": None}
