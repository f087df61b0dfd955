"""The replay rules (pure): erasure by the last forget, lineage by the last switch marker."""

from __future__ import annotations

import pytest

from memstream.agents.replay import ReplayPlan
from memstream.streams.codec import CONTROL_HEADER
from memstream.streams.events import EVENT_HEADER, GENERATION_HEADER

UPSERT = {EVENT_HEADER: "upsert"}
FORGET = {EVENT_HEADER: "forget"}


def switch(generation: int) -> dict[str, str]:
    return {EVENT_HEADER: "switch", GENERATION_HEADER: str(generation)}


def test_a_user_is_skipped_up_to_the_last_forget_only() -> None:
    plan = ReplayPlan()
    plan.scan_event(0, 5, "acme/erin", FORGET)
    plan.scan_event(0, 9, "acme/erin", FORGET)  # forgotten twice: the last counts
    plan.scan_event(0, 7, "acme/bob", UPSERT)
    assert plan.erased_event(0, 3, "acme/erin") and plan.erased_event(0, 9, "acme/erin")
    assert not plan.erased_event(0, 10, "acme/erin"), "what she said afterwards is kept"
    assert not plan.erased_event(0, 3, "acme/bob")
    assert not plan.erased_event(1, 3, "acme/erin"), "another partition: not her history"


def test_forget_controls_on_the_messages_topic() -> None:
    plan = ReplayPlan()
    plan.scan_message(2, 40, "acme/erin", {CONTROL_HEADER: "forget"})
    plan.scan_message(2, 41, "acme/bob", {"content-type": "application/json"})
    assert plan.erased_message(2, 39, "acme/erin") and not plan.erased_message(2, 41, "acme/erin")
    assert not plan.erased_message(2, 1, "acme/bob")
    assert plan.erased_events == {}, "the two topics' offsets are never mixed"


@pytest.mark.parametrize(
    ("partition", "offset", "generation", "kept"),
    [
        (0, 5, None, False),  # untagged before the marker: replaced by generation 3
        (0, 4, 3, True),  # generation 3, written by the rebuild before its marker
        (0, 12, 3, True),  # ... or carried over after it
        (0, 6, 2, False),  # an abandoned rebuild's generation
        (0, 11, None, True),  # a worker's write after the switch
        (1, 5, None, True),  # partition 1 has no marker: untagged is the lineage
        (1, 6, 3, False),  # ... and tagged events there never went live
    ],
)
def test_lineage_follows_the_last_switch_marker(
    partition: int, offset: int, generation: int | None, kept: bool
) -> None:
    plan = ReplayPlan()
    plan.scan_event(0, 2, "", switch(1))
    plan.scan_event(0, 10, "", switch(3))
    assert plan.switches == {0: (10, 3)} and plan.live_generation == 3
    assert plan.in_lineage(partition, offset, generation) is kept


def test_an_older_marker_seen_later_does_not_win() -> None:
    plan = ReplayPlan()
    plan.scan_event(0, 10, "", switch(3))
    plan.scan_event(0, 2, "", switch(1))
    assert plan.switches == {0: (10, 3)}
