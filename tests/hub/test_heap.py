"""Returning freed heap memory (hub/heap.py)."""

from __future__ import annotations

import platform

import pytest

from lastseen.hub import heap
from lastseen.hub.heap import Trimmer


def test_the_first_trim_comes_after_enough_rows() -> None:
    trimmer = Trimmer(rows=100)
    assert not trimmer.due(0)
    assert not trimmer.due(99)
    assert trimmer.due(100)


def test_each_trim_starts_the_next_count() -> None:
    trimmer = Trimmer(rows=100)
    assert trimmer.due(150)
    assert not trimmer.due(249)  # 99 rows since the last trim
    assert trimmer.due(250)
    assert not trimmer.due(250)  # nothing written since


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_glibc_malloc_trim_is_found_and_callable() -> None:
    assert heap.MALLOC_TRIM is not None
    # ~80 MiB freed below a block still in use: pages only malloc_trim gives back.
    garbage = [bytes(4096) for _ in range(20_000)]
    keeper = [bytes(4096) for _ in range(16)]
    del garbage
    assert heap.release() is True
    assert len(keeper) == 16


def test_without_malloc_trim_release_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "MALLOC_TRIM", None)
    assert heap.release() is False
