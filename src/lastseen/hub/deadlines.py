"""Deadlines of device numbers, bucketed by millisecond.

The hub used to keep a heap of ``(deadline, device_id)`` tuples: 88 bytes a device
and one ``heappop`` per expiry. Here a bucket is an ``array`` of device numbers
whose deadlines fall in the same millisecond (4 bytes a device), and only the
buckets' keys are on a heap. A burst of 100 000 devices expiring in the same
second is then a handful of buckets, read in passes over arrays.

Entries are lazy, as they were on the heap: the table's ``scheduled`` column holds
each device's live deadline, and an entry whose device no longer has that deadline
(it beat, was rescheduled earlier, or was deleted) is dropped when its bucket comes
up. Bucket ``k`` holds deadlines in ``((k - 1) / 1000, k / 1000]``; ``first()`` is
the end of the earliest bucket, so a timer woken then finds all of it due, and a
deadline never fires early. ``take(now)`` still compares exact deadlines, so a sweep
at any ``now`` fires exactly the deadlines that are ``<= now``.
"""

from __future__ import annotations

import heapq
import math
from array import array


def bucket_of(deadline: float) -> int:
    """The bucket of ``deadline``: the smallest ``k`` with ``k / 1000 >= deadline``."""
    key = math.ceil(deadline * 1000.0)
    # Float rounding may put k / 1000 a hair below the deadline; never fire early.
    return key + 1 if key / 1000.0 < deadline else key


class Deadlines:
    """Lazy deadline entries of device numbers, in millisecond buckets."""

    __slots__ = ("_buckets", "_keys", "_size")

    def __init__(self) -> None:
        self._buckets: dict[int, array[int]] = {}
        self._keys: list[int] = []
        self._size = 0

    def __len__(self) -> int:
        """Entries held, live or not."""
        return self._size

    def add(self, deadline: float, n: int) -> bool:
        """Add an entry; True if it is now the earliest bucket (wake the timer)."""
        key = bucket_of(deadline)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = array("I")
            heapq.heappush(self._keys, key)
        bucket.append(n)
        self._size += 1
        return self._keys[0] == key

    def extend(self, key: int, numbers: array[int]) -> bool:
        """Add many entries of one bucket (``bucket_of`` their deadline) at once;
        True if it is now the earliest bucket."""
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = numbers
            heapq.heappush(self._keys, key)
        else:
            bucket.extend(numbers)
        self._size += len(numbers)
        return self._keys[0] == key

    def first(self) -> float | None:
        """The end of the earliest bucket (no entry in it is due later), or None."""
        return self._keys[0] / 1000.0 if self._keys else None

    def take(self, now: float, limit: int, scheduled: array[float]) -> list[int]:
        """Remove and return device numbers whose live deadline (``scheduled[n]``) is
        ``<= now``, earliest buckets first: about ``limit`` of them (a bucket that
        ends after ``now`` is read whole). Dead entries are dropped; live ones not yet
        due stay."""
        keys = self._keys
        buckets = self._buckets
        due: list[int] = []
        while keys and len(due) < limit:
            key = keys[0]
            bucket = buckets[key]
            if key / 1000.0 <= now:
                # Every deadline in it is due; an entry with a later deadline is dead.
                room = limit - len(due)
                if len(bucket) > room:
                    part = bucket[:room]
                    del bucket[:room]
                else:
                    part = bucket
                    heapq.heappop(keys)
                    del buckets[key]
                self._size -= len(part)
                due += [n for n in part if scheduled[n] <= now]
                continue
            if (key - 1) / 1000.0 > now:
                break  # nothing in it can be due
            # The bucket holding ``now``: split it by exact deadline.
            heapq.heappop(keys)
            del buckets[key]
            self._size -= len(bucket)
            later = array("I")
            for n in bucket:
                deadline = scheduled[n]
                if deadline <= now:
                    due.append(n)
                elif deadline == deadline and bucket_of(deadline) == key:
                    later.append(n)
            if later:
                self.extend(key, later)
            break
        return due

    def due(self, now: float, scheduled: array[float]) -> set[int]:
        """Device numbers whose live deadline is ``<= now``, left in place: what a
        reader must judge itself because the sweep has not reached them yet.

        Walks only the heap's due part (a child's key is never below its parent's),
        so in steady state, with the sweep a few milliseconds behind, this is a handful
        of buckets; after a restart it is the whole overdue backlog."""
        keys = self._keys
        buckets = self._buckets
        last = bucket_of(now)  # no deadline <= now is in a later bucket
        found: set[int] = set()
        stack = [0] if keys else []
        while stack:
            i = stack.pop()
            key = keys[i]
            if key > last:
                continue
            found.update(n for n in buckets[key] if scheduled[n] <= now)
            stack += [c for c in (2 * i + 1, 2 * i + 2) if c < len(keys)]
        return found
