"""The fair order in which waiting image jobs start.

Two levels of round-robin: communities take turns, and inside a community its members take
turns, each member's own requests in the order they were made. "Taking turns" means the
group that was served longest ago goes next, and a group that was never served (a newcomer)
goes before everyone who was: so one member's ten requests cannot starve the next member,
whose first request starts at the very next free slot. When a line empties its last turn is
still remembered, so coming back does not make anyone a newcomer again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)

__all__ = ["FairQueue", "ordinal"]

MEMORY = 4096  # groups and lanes whose last turn is remembered


@dataclass(slots=True)
class _Lane(Generic[T]):
    """One member's waiting items, oldest first."""

    arrival: int
    items: deque[T] = field(default_factory=deque)
    last_served: int = 0  # 0 = never


@dataclass(slots=True)
class _Group(Generic[T]):
    """One community's members with something waiting."""

    arrival: int
    lanes: dict[Hashable, _Lane[T]] = field(default_factory=dict)
    last_served: int = 0


class FairQueue(Generic[T]):
    """Round-robin over groups (communities), and inside each over lanes (members)."""

    def __init__(self) -> None:
        self._groups: dict[Hashable, _Group[T]] = {}
        self._where: dict[T, tuple[Hashable, Hashable]] = {}
        self._stamp = 0  # counts arrivals and services: later = bigger
        # When each group and (group, lane) was last served, remembered after its line empties:
        # a member whose one request just started must not count as a newcomer a moment later.
        self._last: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, item: object) -> bool:
        return item in self._where

    def push(self, group: Hashable, lane: Hashable, item: T) -> None:
        """Add ``item`` at the end of ``lane``'s own line."""
        if item in self._where:
            raise ValueError(f"{item!r} is already queued")
        g = self._groups.get(group)
        if g is None:
            g = self._groups[group] = _Group(self._next(), last_served=self._last.get(group, 0))
        line = g.lanes.get(lane)
        if line is None:
            line = g.lanes[lane] = _Lane(self._next(), last_served=self._last.get((group, lane), 0))
        line.items.append(item)
        self._where[item] = (group, lane)

    def pop(self) -> T | None:
        """The item whose turn it is, or None when nothing waits."""
        stamp = self._next()
        taken = _take(self._groups, stamp)
        if taken is None:
            return None
        item, group, lane = taken
        del self._where[item]
        self._last[group] = self._last[(group, lane)] = stamp
        if len(self._last) > MEMORY:
            # Forgetting the longest-ago served keeps their rank: "never" sorts first, as they did.
            keep = sorted(self._last.items(), key=lambda kv: kv[1])[len(self._last) // 2 :]
            self._last = dict(keep)
        return item

    def remove(self, item: T) -> bool:
        """Take ``item`` out of the line wherever it is; False if it was not queued."""
        where = self._where.pop(item, None)
        if where is None:
            return False
        group, lane = where
        g = self._groups[group]
        g.lanes[lane].items.remove(item)
        if not g.lanes[lane].items:
            del g.lanes[lane]
        if not g.lanes:
            del self._groups[group]
        return True

    def order(self) -> list[T]:
        """Every waiting item in the order they would start if nothing else arrived.

        Taking turns by "served longest ago" is a plain rotation once sorted, so this is
        an interleaving of each group's interleaved lanes: linear, not a simulation.
        """
        groups = sorted(self._groups.values(), key=_rank)
        return _interleave(
            [_interleave([list(ln.items) for ln in sorted(g.lanes.values(), key=_rank)]) for g in groups]
        )

    def _next(self) -> int:
        self._stamp += 1
        return self._stamp


def _rank(entry: _Group[T] | _Lane[T]) -> tuple[int, int]:
    return entry.last_served, entry.arrival


def _interleave(lines: list[list[T]]) -> list[T]:
    """One from each line in turn, dropping lines as they run out."""
    turns = deque(iter(line) for line in lines)
    found: list[T] = []
    while turns:
        line = turns.popleft()
        item = next(line, None)
        if item is not None:
            found.append(item)
            turns.append(line)
    return found


def _oldest(entries: Iterator[tuple[Hashable, _Group[T] | _Lane[T]]]) -> Hashable:
    # Least recently served first; among never-served, first come first served.
    return min(entries, key=lambda kv: _rank(kv[1]))[0]


def _take(groups: dict[Hashable, _Group[T]], stamp: int) -> tuple[T, Hashable, Hashable] | None:
    if not groups:
        return None
    group_key = _oldest(iter(groups.items()))
    group = groups[group_key]
    lane_key = _oldest(iter(group.lanes.items()))
    lane = group.lanes[lane_key]
    item = lane.items.popleft()
    group.last_served = lane.last_served = stamp
    if not lane.items:
        del group.lanes[lane_key]
    if not group.lanes:
        del groups[group_key]
    return item, group_key, lane_key


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, …, 11th, 12th, 13th, …, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
