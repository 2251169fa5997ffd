"""block_address(obj): the allocation block, so that an object's death is its block's free."""

import numpy as np
import pytest
from tracer_util import capture_run

from memscope.producer import capture
from memscope.producer.wire import KIND_FREE


class Plain:
    def __init__(self):
        self.value = 1


def _make_list():
    return [1, 2, 3]


def _make_dict():
    return {"a": 1}


def _make_str():
    return "x" * 1000 + str(id(object()))


@pytest.mark.parametrize("factory", [_make_list, _make_dict, Plain, _make_str])
def test_alloc_and_free_of_the_block_match_block_address(factory):
    box = {}

    def life():
        # take every object kind's free-list entries first so the target is really allocated
        crowd = [factory() for _ in range(300)]
        target = factory()
        box["address"] = capture.block_address(target)
        box["id"] = id(target)
        # free lists fill up from the crowd, so the target's own death reaches the allocator
        del crowd
        del target

    ev, _, _ = capture_run(life)
    address = box["address"]
    at = np.flatnonzero(ev["address"] == address)
    kinds = ev["kind"][at].tolist()
    # (an earlier block at this address may die first: the allocator reuses addresses)
    born = next(i for i, kind in enumerate(kinds) if kind != KIND_FREE)
    assert KIND_FREE in kinds[born + 1:], kinds
    assert address <= box["id"]
    assert box["id"] - address <= 32


def test_str_block_is_the_object_itself():
    s = "y" * 100
    assert capture.block_address(s) == id(s)


def test_gc_object_block_is_before_the_object():
    obj = [1]
    assert capture.block_address(obj) == id(obj) - 16


def test_a_list_parked_on_the_free_list_still_dies_through_its_item_array():
    box = {}

    def life():
        target = [1, 2, 3]
        box["blocks"] = capture.death_blocks(target)
        del target  # the list object goes to the free list; its item array is freed

    ev, _, _ = capture_run(life)
    own, items = box["blocks"]
    assert ((ev["kind"] == KIND_FREE) & (ev["address"] == items)).sum() == 1
    assert capture.death_blocks("text") == [id("text")]
