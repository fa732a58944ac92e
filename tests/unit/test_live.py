"""Live status without the cloud: frames and their 32 KB limit, the broadcaster's
per-connection outcomes (410, 429), the stream mapping's filter and checkpoint,
the CLI watcher's ordering and exit statuses, the @connections IAM mapping."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from agenthq.adapters.connections import ConnectionGone, SendThrottled
from agenthq.errors import InvalidRequest
from agenthq.live import broadcast
from agenthq.live.protocol import MAX_FRAME_BYTES, parse_subscription, run_event_frame
from agenthq_cli.watch import RunWatcher, exit_status
from local.iam.calls import Call, Lookups, checks_for
from local.streams import _failed_from, matches


def test_an_event_too_big_for_a_frame_is_sent_truncated_without_its_data():
    small = run_event_frame("R1", {"seq": 3, "type": "tool.result", "at": "t", "data": {"x": "y"}})
    assert json.loads(small)["event"]["data"] == {"x": "y"} and "truncated" not in json.loads(small)
    big = run_event_frame("R1", {"seq": 4, "type": "tool.result", "at": "t", "data": {"x": "y" * 40_000}})
    assert len(big) <= MAX_FRAME_BYTES
    assert json.loads(big) == {"type": "run.event", "run_id": "R1", "seq": 4, "truncated": True,
                               "event": {"seq": 4, "type": "tool.result", "at": "t"}}


@pytest.mark.parametrize("body", ["", "{", "[]", '{"action": "subscribe", "after": true, "run_id": "A"}',
                                  '{"action": "subscribe", "run_id": "a/b"}',
                                  '{"action": "subscribe", "run_id": "A", "after": 1e3}'])
def test_bad_subscriptions_are_invalid_requests(body):
    with pytest.raises(InvalidRequest):
        parse_subscription(body).target()


class Sends:
    def __init__(self, outcomes):
        self.outcomes = outcomes  # connection id -> list of exceptions (None = sent)
        self.sent = []

    def send(self, connection_id, data):
        outcome = self.outcomes.get(connection_id, [None]).pop(0) if self.outcomes.get(connection_id) else None
        if outcome is not None:
            raise outcome
        self.sent.append(connection_id)


def _everyone_entitled(monkeypatch):
    """These tests are about sending: every subscriber's principal still has its access
    (the check itself reads the table: tests/e2e/test_live_access.py)."""
    monkeypatch.setattr(broadcast, "_entitled", lambda services, delivery, subscribers, batch: subscribers)


def _deliver(monkeypatch, outcomes, subscribers, event_id=None):
    sends = Sends(outcomes)
    forgotten = []
    monkeypatch.setattr(broadcast, "_subscribers", lambda delivery, batch: [SimpleNamespace(connection_id=c)
                                                                            for c in subscribers])
    monkeypatch.setattr(broadcast, "_forget", lambda wid, sub: forgotten.append(sub.connection_id))
    _everyone_entitled(monkeypatch)
    record = {"eventName": "INSERT", "eventID": event_id or f"evt-{id(sends)}", "dynamodb": {"NewImage": {
        "pk": {"S": "WS#W1#RUN#R1"}, "sk": {"S": "EVT#0000000001"}, "type": {"S": "RunEvent"},
        "seq": {"N": "1"}, "event_type": {"S": "run.queued"}, "at": {"S": "2026-01-01T00:00:00.000000+0000"},
        "data": {"S": "{}"}}}}
    services = SimpleNamespace(connections=sends)
    with ThreadPoolExecutor(4) as pool:
        try:
            return broadcast.deliver_record(services, record, pool, sleep=lambda s: None), sends, forgotten, None
        except broadcast.DeliveryFailed as failed:
            return None, sends, forgotten, failed


def test_a_retried_record_goes_only_to_the_connections_it_did_not_reach(monkeypatch):
    """The mapping retries a batch from a record that stayed throttled for some connections:
    the retry (in the same warm container) posts it to those only, not to every watcher again."""
    throttled = {"b": [SendThrottled()] * broadcast.SEND_ATTEMPTS}
    _, first, _, failed = _deliver(monkeypatch, throttled, ["a", "b", "c"], event_id="evt-burst")
    assert failed is not None and sorted(first.sent) == ["a", "c"]
    reached, retry, _, failed = _deliver(monkeypatch, {}, ["a", "b", "c"], event_id="evt-burst")
    assert failed is None and retry.sent == ["b"] and reached == 1
    _, again, _, _ = _deliver(monkeypatch, {}, ["a", "b", "c"], event_id="evt-burst")
    assert sorted(again.sent) == ["a", "b", "c"], "once delivered, the record is forgotten (a new batch sends all)"


def test_a_gone_connection_is_forgotten_and_the_others_still_get_the_event(monkeypatch):
    reached, sends, forgotten, failed = _deliver(monkeypatch, {"b": [ConnectionGone()]}, ["a", "b", "c"])
    assert failed is None and reached == 2
    assert sorted(sends.sent) == ["a", "c"] and forgotten == ["b"]


def test_throttling_is_retried_with_backoff_and_a_record_that_stays_throttled_fails_alone(monkeypatch):
    reached, sends, _, failed = _deliver(monkeypatch, {"a": [SendThrottled(), SendThrottled()]}, ["a", "b"])
    assert failed is None and reached == 2
    _, sends, _, failed = _deliver(monkeypatch, {"a": [SendThrottled()] * broadcast.SEND_ATTEMPTS}, ["a", "b"])
    assert failed is not None and sends.sent == ["b"]


def test_a_record_that_is_not_a_new_event_or_alert_is_not_sent():
    assert broadcast.delivery_of({"type": {"S": "Run"}, "pk": {"S": "WS#W#RUN#R"}}) is None
    assert broadcast.delivery_of({"type": {"S": "RunEvent"}, "pk": {"S": "WS#W"}}) is None


def test_the_stream_filter_and_the_checkpoint_after_item_failures():
    pattern = {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"type": {"S": ["RunEvent", "Alert"]}}}}
    assert matches(pattern, {"eventName": "INSERT", "dynamodb": {"NewImage": {"type": {"S": "Alert"}}}})
    assert not matches(pattern, {"eventName": "MODIFY", "dynamodb": {"NewImage": {"type": {"S": "Alert"}}}})
    assert not matches(pattern, {"eventName": "INSERT", "dynamodb": {"NewImage": {"type": {"S": "Run"}}}})
    batch = [{"dynamodb": {"SequenceNumber": str(n)}} for n in range(5)]
    assert _failed_from({"batchItemFailures": []}, batch) is None
    assert _failed_from({"batchItemFailures": [{"itemIdentifier": "3"}, {"itemIdentifier": "1"}]}, batch) == 1
    assert _failed_from({"batchItemFailures": [{"itemIdentifier": "nope"}]}, batch) == 0


def test_the_watcher_shows_each_seq_once_in_order():
    watcher = RunWatcher("ws://x", {}, "R", after=1)
    frames = [3, 2, 2, 1, 4, 3, 5]
    shown = [e["seq"] for seq in frames
             for e in watcher._in_order({"seq": seq, "event": {"seq": seq, "type": "t"}})]
    assert shown == [2, 3, 4, 5] and watcher.last == 5


def test_the_watcher_waits_out_a_rate_limited_subscribe_and_subscribes_again_from_its_last_seq(monkeypatch):
    import agenthq_cli.watch as watch

    slept: list[float] = []
    monkeypatch.setattr(watch.time, "sleep", slept.append)

    class Socket:
        def __init__(self, frames):
            self.frames = [json.dumps(f) for f in frames]
            self.sent: list[dict] = []

        def recv(self, timeout):
            return self.frames.pop(0)

        def send(self, data):
            self.sent.append(json.loads(data))

    event = {"seq": 2, "type": "t"}
    ws = Socket([{"type": "run.event", "run_id": "R", "seq": 2, "event": event},
                 {"type": "error", "code": "rate_limited", "message": "slow down", "retry_after": 3},
                 {"type": "run.event", "run_id": "R", "seq": 3, "event": {"seq": 3, "type": "t"}}])
    watcher = RunWatcher("ws://x", {}, "R", after=1)
    shown = [e["seq"] for _, e in zip(range(2), watcher._read(ws), strict=False)]
    assert shown == [2, 3] and slept == [3.0]
    assert ws.sent == [{"action": "subscribe", "run_id": "R", "after": 2}]


def test_a_refused_frame_carries_when_to_send_it_again():
    from agenthq.errors import NotFound, RateLimited
    from agenthq.live.connections import as_error_frame

    assert as_error_frame(RateLimited("slow down", retry_after=4)) == {
        "type": "error", "code": "rate_limited", "message": "slow down", "retry_after": 4}
    assert "retry_after" not in as_error_frame(NotFound())


def test_exit_statuses_follow_gh_run_watch():
    assert [exit_status(t) for t in ("run.succeeded", "run.failed", "run.timed_out", "run.cancelled")] == [0, 1, 1, 2]


def test_connections_api_calls_need_manage_connections_on_the_connection():
    call = Call("apigatewaymanagementapi", "execute-api", "PostToConnection", {"ConnectionId": "abc"}, "us-east-1",
                "123456789012", method="POST", path="/@connections/abc",
                url="http://127.0.0.1:4000/v1/@connections/abc")
    (check,) = checks_for(call, Lookups(websocket_api_id="agenthqlive"))
    assert check.action == "execute-api:ManageConnections"
    assert check.resource == "arn:aws:execute-api:us-east-1:123456789012:agenthqlive/v1/POST/@connections/abc"
    aws = Call("apigatewaymanagementapi", "execute-api", "DeleteConnection", {}, "eu-west-1", "1", method="DELETE",
               path="/@connections/x", url="https://abc123.execute-api.eu-west-1.amazonaws.com/v1/@connections/x")
    assert checks_for(aws, Lookups())[0].resource == "arn:aws:execute-api:eu-west-1:1:abc123/v1/DELETE/@connections/x"


def test_the_records_of_one_batch_read_their_subscribers_once(monkeypatch):
    """A burst of a run's events arrives as one batch: one Query of the run's subscribers (and
    one of the workspace's, for run.* events) serves all of it, not one per record."""
    queries = []

    def query(partition, prefix):
        queries.append(prefix)
        return [SimpleNamespace(connection_id="c1", run_id="R1", after=0)]

    monkeypatch.setattr(broadcast, "_query", query)
    _everyone_entitled(monkeypatch)
    sends = Sends({})
    services = SimpleNamespace(connections=sends)
    batch = broadcast.Batch()

    def record(seq, event_type):
        return {"eventName": "INSERT", "eventID": f"evt-{seq}", "dynamodb": {"NewImage": {
            "pk": {"S": "WS#W1#RUN#R1"}, "sk": {"S": f"EVT#{seq:010d}"}, "type": {"S": "RunEvent"},
            "seq": {"N": str(seq)}, "event_type": {"S": event_type}, "at": {"S": "2026-01-01T00:00:00.000000+0000"},
            "data": {"S": "{}"}}}}

    with ThreadPoolExecutor(2) as pool:
        for seq, kind in enumerate(["run.started", "model.called", "tool.called", "tool.result"], start=1):
            assert broadcast.deliver_record(services, record(seq, kind), pool, sleep=lambda s: None, batch=batch) == 1
    assert sends.sent == ["c1"] * 4
    assert sorted(queries) == sorted({q for q in queries}) and len(queries) == 2, queries


def test_a_connection_that_missed_a_record_gets_no_later_one_of_the_batch_before_the_retry(monkeypatch):
    """Record 1 stays throttled for b: record 2 is not sent to b ahead of it (it fails for b too), and
    the mapping's retry from record 1 gives b record 1, then record 2 — b sees the run in order."""
    monkeypatch.setattr(broadcast, "_query", lambda partition, prefix: [
        SimpleNamespace(connection_id=c, run_id="R1", after=0) for c in ("a", "b")])
    _everyone_entitled(monkeypatch)

    def record(seq):
        return {"eventName": "INSERT", "eventID": f"evt-order-{seq}", "dynamodb": {"NewImage": {
            "pk": {"S": "WS#W1#RUN#R1"}, "sk": {"S": f"EVT#{seq:010d}"}, "type": {"S": "RunEvent"},
            "seq": {"N": str(seq)}, "event_type": {"S": "tool.called"}, "at": {"S": "2026-01-01T00:00:00.000000+0000"},
            "data": {"S": "{}"}}}}

    def deliver_batch(sends, seqs):
        batch, failed = broadcast.Batch(), []
        with ThreadPoolExecutor(2) as pool:
            for seq in seqs:
                try:
                    broadcast.deliver_record(SimpleNamespace(connections=sends), record(seq), pool,
                                             sleep=lambda s: None, batch=batch)
                except broadcast.DeliveryFailed:
                    failed.append(seq)
        return failed

    first = Sends({"b": [SendThrottled()] * broadcast.SEND_ATTEMPTS})
    assert deliver_batch(first, [1, 2]) == [1, 2]
    assert first.sent == ["a", "a"], "b got neither: record 2 would have overtaken record 1"
    retry = Sends({})
    assert deliver_batch(retry, [1, 2]) == []
    assert retry.sent == ["b", "b"], "the retry reaches b only, record 1 then record 2"
