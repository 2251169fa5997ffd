"""block_address(obj): the allocation block, so that an object's death is its block's free."""

import gc
import sys

import numpy as np
import pytest
from tracer_util import capture_run

from memscope.producer import capture
from memscope.protocol.wire import KIND_ALLOC, KIND_CALLOC, KIND_FREE, KIND_REALLOC

BIRTHS = (KIND_ALLOC, KIND_CALLOC, KIND_REALLOC)


class Plain:
    def __init__(self):
        self.value = 1


def _make_list():
    return [1, 2, 3]


def _make_dict():
    return {"a": 1}


def _make_str():
    return "x" * 1000 + str(id(object()))


MARK = 4_321_987  # a bytearray size nothing else allocates


@pytest.mark.parametrize("factory", [_make_list, _make_dict, Plain, _make_str])
def test_alloc_and_free_of_the_block_match_block_address(factory):
    box = {}

    def life():
        # take every object kind's free-list entries first so the target is really allocated;
        # no collection and no other thread (the drain frees dicts and lists) may refill them
        # before the target is made
        switch, collecting = sys.getswitchinterval(), gc.isenabled()
        sys.setswitchinterval(5.0)
        gc.disable()
        try:
            _life()
        finally:
            sys.setswitchinterval(switch)
            if collecting:
                gc.enable()

    def _life():
        crowd = [factory() for _ in range(300)]
        target = factory()
        box["address"] = capture.block_address(target)
        box["id"] = id(target)
        mark = bytearray(MARK)  # a landmark in this thread's records while target lives
        del mark
        # free lists fill up from the crowd, so the target's own death reaches the allocator
        del crowd
        del target

    ev, _, _ = capture_run(life)
    address = box["address"]
    assert address <= box["id"]
    assert box["id"] - address <= 32
    # this thread's records are in the order they happened; the allocator reuses addresses,
    # so other blocks may have lived at this address before and after the target
    mine = ev["tid"] == capture.thread_id()
    kinds, addresses, sizes = ev["kind"][mine], ev["address"][mine], ev["size"][mine]
    (mark,) = np.flatnonzero((sizes == MARK + 1) & (kinds != KIND_FREE))
    before = kinds[:mark][addresses[:mark] == address].tolist()
    after = kinds[mark:][addresses[mark:] == address].tolist()
    # the block at the address was allocated (target's birth), and its next event is a free
    assert before and before[-1] in BIRTHS, before
    assert after and after[0] == KIND_FREE, after


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
