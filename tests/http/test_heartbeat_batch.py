"""The bulk check of a batch (``plain_batch``) takes exactly the batches whose every
item is the common one, and gives their ids in order; anything else goes item by item."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from lastseen.http.heartbeat import plain_batch
from lastseen.hub.core import DEVICE_ID

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-"
valid_ids = st.text(ALPHABET, min_size=1, max_size=128)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3)
# Near misses of the common item as well as plainly wrong ones.
items = st.one_of(
    st.fixed_dictionaries({"device_id": valid_ids}),
    st.fixed_dictionaries({"device_id": valid_ids}),
    st.fixed_dictionaries({"device_id": st.text(max_size=130)}),
    st.fixed_dictionaries({"device_id": st.text(ALPHABET, min_size=129, max_size=130)}),
    st.fixed_dictionaries({"device_id": json_scalars}),
    st.fixed_dictionaries({"device_id": valid_ids, "attributes": st.just({})}),
    st.dictionaries(st.text(max_size=10), json_scalars, max_size=2),
    st.lists(json_scalars, max_size=2),
    json_scalars,
)


def _common(item: Any) -> bool:
    if not (isinstance(item, dict) and list(item) == ["device_id"]):
        return False
    device_id = item["device_id"]
    return isinstance(device_id, str) and DEVICE_ID.fullmatch(device_id) is not None


@given(st.lists(items, max_size=12))
def test_only_batches_of_common_items_are_taken_in_bulk(batch: list[Any]) -> None:
    expected = [item["device_id"] for item in batch] if all(map(_common, batch)) else None
    assert plain_batch(batch) == (expected or None)


def test_one_odd_item_anywhere_sends_the_batch_item_by_item() -> None:
    good = [{"device_id": f"d{i}"} for i in range(5)]
    assert plain_batch(good) == [f"d{i}" for i in range(5)]
    for odd in ({"device_id": "é"}, {"device_id": ""}, {"id": "a"}, ["device_id"], "a", 7, None):
        for place in range(len(good) + 1):
            assert plain_batch([*good[:place], odd, *good[place:]]) is None
