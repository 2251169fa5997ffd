"""Lifecycle: variables born and dying across functions, loops and named scopes.

    memscope run examples/lifecycle.py
    python examples/lifecycle.py [--size 10]

The counterpart of memscope-rs's ``lifecycle`` example. A tracked variable's death is the
allocator's free of its memory, so the timeline shows when each one really went away (for a
tracked ``list``, ``dict`` or small ``tuple``, which CPython would recycle through a free
list, memscope makes the death a real free; a tracked ``float`` can still die unseen -- see
docs/limitations.md).
"""

from __future__ import annotations

from array import array

from _example import finish, parse_args, print_stats

import memscope


def create_and_drop_string(size: int) -> str:
    """Track a local string that dies on return, and one that is returned to the caller."""
    # Built at run time: a string literal would live in the code object forever.
    local_string = " ".join(f"local line {i}" for i in range(50 * size))
    memscope.track_var(local_string)  # scope: "create_and_drop_string"

    return_string = " ".join(f"returned line {i}" for i in range(50 * size))
    memscope.track_var(return_string)
    return return_string  # local_string is freed here; return_string lives on


@memscope.scope("process_data_in_loop")
def process_data_in_loop(iterations: int) -> int:
    """Each iteration's buffer dies when the next one replaces it."""
    total = 0
    for i in range(iterations):
        loop_vec = array("i", [i]) * 1000  # 1,000 ints in one contiguous block
        memscope.track_var(loop_vec)
        total += sum(loop_vec)
        print(f"  iteration {i}: sum = {total}")
    return total


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    memscope.init()
    print("Lifecycle example started...")

    # Lives for the whole of main().
    main_scope_vec = array("d", range(100 * args.size))
    memscope.track_var(main_scope_vec)

    # The returned string is tracked again under a new name: the lifetime report lists the
    # two records as aliases of one object.
    transferred_string = create_and_drop_string(args.size)
    memscope.track_var(transferred_string)

    print("Processing data in a loop...")
    process_data_in_loop(5 * args.size)

    # An explicit scope with a short-lived temporary inside.
    with memscope.scope("temporary_work"):
        scratch = bytes(256 * 1024 * args.size)
        memscope.track_var(scratch)
        del scratch  # dies here, inside the scope

    print_stats("Lifecycle statistics")
    finish("lifecycle", args)


if __name__ == "__main__":
    main()
