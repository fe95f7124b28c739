"""Returning freed heap memory (hub/heap.py)."""

from __future__ import annotations

import platform

import pytest

from lastseen.hub import heap
from lastseen.hub.heap import Trimmer


def test_the_first_trim_comes_after_enough_rows_once_writing_calms() -> None:
    trimmer = Trimmer(rows=100, every=5)
    assert not trimmer.due(0)
    assert not trimmer.due(99)
    assert trimmer.due(100)  # 99 rows in the last check: calm enough


def test_each_trim_starts_the_next_count() -> None:
    trimmer = Trimmer(rows=100, every=5)
    assert not trimmer.due(50)
    assert trimmer.due(120)
    assert not trimmer.due(219)  # 99 rows since the last trim
    assert trimmer.due(300)
    assert not trimmer.due(300)  # nothing written since


def test_under_sustained_writing_it_trims_every_so_many_checks() -> None:
    trimmer = Trimmer(rows=100, every=3)
    answers = [trimmer.due(1000.0 * i) for i in range(1, 8)]  # 1 000 rows each check
    assert answers == [False, False, True, False, False, True, False]
    assert trimmer.due(7000.0)  # writing stopped with rows pending: at once


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
