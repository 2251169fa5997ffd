"""Basic usage: start tracing, track a few variables, read the stats, export the reports.

    memscope run examples/basic_usage.py          # traced by memscope run, reports written
    python examples/basic_usage.py [--size 10]    # traces itself and exports the reports

The counterpart of memscope-rs's ``basic_usage`` example.
"""

from __future__ import annotations

from _example import finish, parse_args, print_stats

import memscope


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    memscope.init()  # start tracing (a no-op when `memscope run` already did)
    print("memscope initialized; tracking memory allocations...")

    # A list of ints: recorded as "numbers_list", list[int], with shallow and deep size.
    numbers_list = list(range(1, 1000 * args.size + 1))
    memscope.track_var(numbers_list)

    # A string built at run time (a literal would live in the code object forever).
    text_string = " ".join(["Hello, memscope!"] * 10 * args.size)
    memscope.track_var(text_string)

    # A mutable byte buffer: Python's closest thing to a boxed heap value.
    boxed_value = bytearray(64 * 1024 * args.size)
    memscope.track_var(boxed_value)

    # A dict of str -> str; the name can also be given explicitly.
    user_data = {"name": "Alice", "role": "Developer"}
    user_data.update({f"key_{i}": f"value_{i}" for i in range(100 * args.size)})
    memscope.track_var(user_data, name="user_data")

    print_stats("Memory statistics")
    print("Tracked variables alive now, by type:")
    for usage in memscope.get_global_tracker().get_memory_by_type():
        print(
            f"  {usage.type_name:<24} {usage.total_size:>10,} bytes "
            f"({usage.allocation_count} variable(s))"
        )

    finish("basic", args)


if __name__ == "__main__":
    main()
