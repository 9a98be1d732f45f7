"""Randomised interleavings: uploads, deletes, permanent deletes and replays of a few keys,
with executions advanced one AWS call at a time in an order hypothesis chooses.

After every step a visible manifest lists only renditions that exist (invariant 3);
once every event has been delivered at least once and every execution has ended, each
key's outputs follow its current state (invariants 1 and 2), and no execution failed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline_world import (
    World,
    follows_current_state,
    picture,
    visible_manifests_are_complete,
    world,
)

KEYS = ("a.jpg", "b/c.jpg")
PICTURES = (picture((200, 30, 30), (48, 32)), picture((20, 40, 220), (30, 60)))
NOT_AN_IMAGE = b"GIF89a but not really"


class Stepper:
    """Lets exactly one execution run at a time, from one AWS call to the next."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._turn: str | None = None
        self._parked: set[str] = set()
        self.running: list[str] = []
        self.outputs: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, BaseException] = {}

    def gate(self) -> None:
        me = threading.current_thread().name
        if me not in self.running:
            return
        with self._cv:
            self._parked.add(me)
            self._cv.notify_all()
            if not self._cv.wait_for(lambda: self._turn == me, timeout=30):
                raise TimeoutError(me)
            self._turn = None
            self._parked.discard(me)

    def start(self, name: str, run: Callable[[], dict[str, Any]]) -> None:
        def target() -> None:
            try:
                self.outputs[name] = run()
            except BaseException as error:
                self.errors[name] = error
            finally:
                with self._cv:
                    self.running.remove(name)
                    self._cv.notify_all()

        self.running.append(name)
        threading.Thread(target=target, name=name, daemon=True).start()
        self._settle(name)

    def step(self, name: str) -> None:
        with self._cv:
            self._turn = name
            self._cv.notify_all()
        self._settle(name)

    def _settle(self, name: str) -> None:
        with self._cv:
            settled = self._cv.wait_for(
                lambda: self._turn is None and (name in self._parked or name not in self.running),
                timeout=30,
            )
        assert settled, f"{name} neither reached its next AWS call nor ended"


actions = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from(KEYS), st.integers(0, len(PICTURES))),
        st.tuples(st.just("delete"), st.sampled_from(KEYS)),
        st.tuples(st.just("purge"), st.sampled_from(KEYS)),
        st.tuples(st.just("deliver"), st.integers(0, 20)),
        st.tuples(st.just("step"), st.integers(0, 5)),
        st.tuples(st.just("step"), st.integers(0, 5)),
        st.tuples(st.just("step"), st.integers(0, 5)),
    ),
    min_size=1,
    max_size=30,
)


def _execution(w: World, event: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """One execution of `event`; a busy key is retried at its next turn."""
    return lambda: w.execute(event, on_busy=lambda: None)


def _act(w: World, stepper: Stepper, action: tuple[Any, ...], pending: list[Any]) -> None:
    kind = action[0]
    if kind == "put":
        _, key, which = action
        data = NOT_AN_IMAGE if which == len(PICTURES) else PICTURES[which]
        pending.append([w.put(key, data), 0])
    elif kind == "delete":
        pending.append([w.delete(action[1]), 0])
    elif kind == "purge":
        versions = [v for v in w.versions(action[1]) if v["IsLatest"]]
        if versions:
            pending.append([w.delete_version(action[1], versions[0]["VersionId"]), 0])
    elif kind == "deliver" and pending:
        delivery = pending[action[1] % len(pending)]
        delivery[1] += 1
        started = len(stepper.outputs) + len(stepper.errors) + len(stepper.running)
        stepper.start(f"x{started}", _execution(w, delivery[0]))
    elif kind == "step" and stepper.running:
        stepper.step(stepper.running[action[1] % len(stepper.running)])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(actions)
def test_outputs_follow_the_current_state_in_any_interleaving(
    steps: list[tuple[Any, ...]],
) -> None:
    with world() as w:
        stepper = Stepper()
        w.pauses.gate = stepper.gate
        pending: list[Any] = []
        for action in steps:
            _act(w, stepper, action, pending)
            assert visible_manifests_are_complete(w, list(KEYS)) == []
        # S3 delivers every event at least once
        for number, (event, delivered) in enumerate(pending):
            if not delivered:
                stepper.start(f"late{number}", _execution(w, event))
        # Round robin: an execution waiting for a busy key needs the holder to move on
        while stepper.running:
            for name in list(stepper.running):
                stepper.step(name)
                assert visible_manifests_are_complete(w, list(KEYS)) == []

        assert stepper.errors == {}
        assert {o["status"] for o in stepper.outputs.values()} <= {
            "processed",
            "rejected",
            "deleted",
            "skipped",
        }
        for key in KEYS:
            assert (
                follows_current_state(
                    w, key, renderable=lambda current: current.size != len(NOT_AN_IMAGE)
                )
                == []
            )
