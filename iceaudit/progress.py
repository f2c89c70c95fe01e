"""Progress of long stages, without the library printing anything itself.

A long computation takes a `StageProgress`: it calls ``stage(name, total)`` once per
stage it starts and gets back an ``advance(k)`` to call as work is done. The CLI
passes one backed by rich's progress bars (`rich_stages`); library callers pass
nothing (`no_progress`) and nothing is shown.
"""
from __future__ import annotations

from typing import Any, Callable

Advance = Callable[[int], None]
StageProgress = Callable[[str, int], Advance]


def no_progress(name: str, total: int) -> Advance:
    """The silent `StageProgress`."""
    return lambda k=1: None


def rich_stages(progress: Any, unit: str = "") -> StageProgress:
    """A `StageProgress` that gives each stage its own bar (a task) in a rich `Progress`."""

    def stage(name: str, total: int) -> Advance:
        task = progress.add_task(name, total=max(int(total), 1), unit=unit)
        return lambda k=1: progress.advance(task, k)

    return stage
