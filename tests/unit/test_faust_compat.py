"""The seek-back fix and the skip watch (unit level; the SIGKILL integration test covers the
whole path on a real broker)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import TopicPartition

from streams.faust_compat import OffsetWatch, _seek_all_to_committed


@dataclass
class M:
    topic: str
    partition: int
    offset: int


class FakeConsumer:
    """Records the calls aiokafka's consumer would get; committed offsets as given."""

    def __init__(self, committed):
        self.committed = committed
        self.calls = []

    async def seek_to_committed(self):
        for tp, off in self.committed.items():
            if off and off > 0:            # aiokafka's own rule: only positive offsets move
                self.calls.append(("seek", tp, off))
        return dict(self.committed)

    def seek(self, tp, off):
        self.calls.append(("seek", tp, off))

    async def seek_to_beginning(self, *tps):
        self.calls.extend(("beginning", tp) for tp in tps)


def test_partitions_without_a_positive_commit_are_really_sought_back():
    never, zero, some = TopicPartition("cdr.normalized", 0), TopicPartition("cdr.normalized", 1), \
        TopicPartition("cdr.normalized", 2)
    changelog = TopicPartition("cdrflow-accounts-changelog", 0)
    c = FakeConsumer({never: None, zero: 0, some: 7, changelog: None})
    got = asyncio.run(_seek_all_to_committed(c, frozenset({"cdr.normalized"})))
    assert got == {never: None, zero: 0, some: 7, changelog: None}
    assert sorted(c.calls, key=str) == sorted([("seek", some, 7), ("seek", zero, 0), ("beginning", never)], key=str)
    # The changelog is positioned by Faust's recovery, never by us.
    assert not any(changelog in call for call in c.calls)


def test_offset_watch_reports_forward_jumps_only():
    w = OffsetWatch()
    assert w.skips([M("t", 0, 0), M("t", 0, 1), M("t", 1, 5), M("t", 0, 2)], generation=1) == []
    # Going back (a re-read after a seek) is normal; going forward past offsets is a skip.
    assert w.skips([M("t", 0, 1), M("t", 0, 2), M("t", 0, 3), M("t", 0, 6)], generation=1) == [("t", 0, 3, 6)]
    assert w.skips([M("t", 1, 9)], generation=1) == [("t", 1, 5, 9)]


def test_offset_watch_starts_afresh_in_a_new_generation():
    w = OffsetWatch()
    w.skips([M("t", 0, 3)], generation=1)
    # After a rebalance the partition resumes wherever its other owner committed.
    assert w.skips([M("t", 0, 40)], generation=2) == []
    assert w.skips([M("t", 0, 42)], generation=2) == [("t", 0, 40, 42)]


def test_offset_watch_sees_a_skip_at_the_start_against_the_committed_offset():
    w = OffsetWatch()
    committed = {("t", 0): 10, ("t", 1): None}
    of = lambda m: committed[(m.topic, m.partition)]  # noqa: E731
    # Partition 0 resumes at 12 although 10 is the next to read; partition 1 has no commit yet.
    assert w.skips([M("t", 0, 12), M("t", 1, 4)], generation=1, committed_of=of) == [("t", 0, 9, 12)]
    w2 = OffsetWatch()
    assert w2.skips([M("t", 0, 10), M("t", 0, 11)], generation=1, committed_of=of) == []
    # A re-read below the committed offset is fine.
    assert OffsetWatch().skips([M("t", 0, 3)], generation=1, committed_of=of) == []


def test_a_reread_that_never_starts_is_reported_as_stalled():
    """Seen under a SIGKILL storm: after the agent asked for cdr.raw[2] to be read again from its
    committed offset (169), Faust fetched nothing more from it; the worker sat idle with 190 CDRs
    unread. A re-read counts as started when a message at or before the first skipped offset
    arrives; one that has not started after the bound is reported."""
    w = OffsetWatch()
    assert w.skips([M("cdr.raw", 2, 168), M("cdr.raw", 2, 173)], generation=1) == [("cdr.raw", 2, 168, 173)]
    w.expect_reread("cdr.raw", 2, 169, now=100.0)
    assert w.stalled(now=120.0, after_s=30) == []
    # Other partitions keep flowing, and more of partition 2 past the hole does not count.
    w.skips([M("cdr.raw", 1, 50), M("cdr.raw", 2, 174)], generation=1)
    assert w.stalled(now=131.0, after_s=30) == [("cdr.raw", 2, 169)]


def test_a_reread_that_starts_is_not_stalled():
    w = OffsetWatch()
    w.skips([M("cdr.raw", 2, 168), M("cdr.raw", 2, 173)], generation=1)
    w.expect_reread("cdr.raw", 2, 169, now=100.0)
    w.skips([M("cdr.raw", 2, 165), M("cdr.raw", 2, 166)], generation=1)   # from the committed offset
    assert w.stalled(now=500.0, after_s=30) == []


def test_a_rebalance_forgets_pending_rereads():
    # The partition may now belong to another worker, which reads it from the committed offset.
    w = OffsetWatch()
    w.expect_reread("cdr.raw", 2, 169, now=100.0)
    w.skips([M("cdr.raw", 0, 7)], generation=2)
    assert w.stalled(now=500.0, after_s=30) == []


def test_check_rereads_ends_the_worker_with_the_reason():
    from streams.batching import check_rereads

    w = OffsetWatch()
    w.expect_reread("cdr.raw", 2, 169, now=0.0)       # monotonic time 0: long past
    died = []
    check_rereads(w, "normalize", lambda stage, exc: died.append((stage, str(exc))), after_s=30)
    assert died and died[0][0] == "normalize" and "cdr.raw[2]" in died[0][1] and "169" in died[0][1]
    fresh = OffsetWatch()
    check_rereads(fresh, "normalize", lambda *a: died.append(a), after_s=30)
    assert len(died) == 1
