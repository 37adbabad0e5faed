"""RunResources: what the nodes of a run share (the http node's client), closed at its end."""

from __future__ import annotations

import anyio
import pytest

from pflow_tui.engine.nodes.base import RunResources


class Thing:
    def __init__(self, log: list[str], name: str, fails: bool = False) -> None:
        self.log, self.name, self.fails = log, name, fails

    async def aclose(self) -> None:
        await anyio.sleep(0)  # a checkpoint: a cancelled scope would stop it here
        self.log.append(f"closed {self.name}")
        if self.fails:
            raise OSError(f"{self.name} would not close")


def test_one_per_key_made_on_first_use_and_all_closed() -> None:
    log: list[str] = []
    res = RunResources()
    made: list[str] = []

    def make(name: str, fails: bool = False) -> Thing:
        made.append(name)
        return Thing(log, name, fails)

    first = res.get("a", lambda: make("a", fails=True))
    assert res.get("a", lambda: make("again")) is first and made == ["a"]
    res.get("b", lambda: make("b"))

    async def close_in_a_cancelled_scope() -> None:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await res.aclose()

    with pytest.raises(OSError, match="a would not close"):
        anyio.run(close_in_a_cancelled_scope)
    assert log == ["closed a", "closed b"]  # b too, and neither stopped by the cancellation
    anyio.run(res.aclose)  # closed once only
    assert log == ["closed a", "closed b"]
