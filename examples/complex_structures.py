"""Complex data structures: nested containers, classes, shared objects, a large buffer.

    memscope run examples/complex_structures.py
    python examples/complex_structures.py [--size 10]

The counterpart of memscope-rs's ``complex_lifecycle_showcase``. The complex-types report
groups the tracked variables by their inferred generic type (``dict[int, User]``,
``numpy.ndarray[float64]``) and suggests ``__slots__`` or numpy where the evidence says so.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from _example import finish, parse_args, print_stats

import memscope


@dataclass
class User:
    """A plain class: every instance carries a ``__dict__`` (see the __slots__ suggestion)."""

    id: int
    name: str
    email: str
    preferences: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Point:
    """The same idea with ``__slots__``: no per-instance ``__dict__``."""

    x: float
    y: float


@dataclass
class Database:
    """Users by id, the set of active sessions and a queue of pending requests."""

    users: dict[int, User] = field(default_factory=dict)
    active_sessions: set[str] = field(default_factory=set)
    request_queue: deque[str] = field(default_factory=deque)


def build_database(n_users: int) -> Database:
    """Fill a database with users, sessions and queued requests."""
    database = Database()
    for i in range(n_users):
        user = User(
            i,
            f"user {i}",
            f"user{i}@example.com",
            {"theme": "dark" if i % 2 else "light", "language": "en"},
        )
        database.users[i] = user
        database.active_sessions.add(f"session-{i:06d}")
        database.request_queue.append(f"GET /users/{i}")
    return database


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    memscope.init()
    print("Complex data structures example...")

    database = build_database(200 * args.size)
    # Track the parts first: when "database" is tracked next, the tracked objects reachable
    # from it are recorded as contained in it (the lifetime report's containment).
    first_user = database.users[0]
    memscope.track_var(first_user)
    # Ten more users, one by one: ten instances of one class are the evidence the
    # complex-types report needs to suggest __slots__.
    for user in list(database.users.values())[1:11]:
        memscope.track_var(user, name=f"user_{user.id}")
    memscope.track_var(database.users, name="users")
    memscope.track_var(database.active_sessions, name="active_sessions")
    memscope.track_var(database.request_queue, name="request_queue")
    memscope.track_var(database)

    # One object under two names (Rc::clone in the seed): reported as aliases.
    shared_config = ["setting1", "setting2", "setting3"]
    memscope.track_var(shared_config)
    shared_config_clone = shared_config
    memscope.track_var(shared_config_clone)

    # Nested generics: dict[str, list[int]] and a tuple of mixed types.
    histogram = {f"bucket-{b}": list(range(b * 10)) for b in range(50 * args.size)}
    memscope.track_var(histogram)
    record = (1, "one", 1.0, None)
    memscope.track_var(record)

    # A large homogeneous list of floats, and the same data as a numpy array.
    samples = [float(i) for i in range(5_000 * args.size)]
    memscope.track_var(samples)
    samples_array = np.array(samples)  # its data buffer shows up in the numpy domain
    memscope.track_var(samples_array)

    points = [Point(float(i), float(-i)) for i in range(1000 * args.size)]
    memscope.track_var(points)

    # A 1 MiB buffer.
    large_buffer = bytearray(1024 * 1024 * args.size)
    memscope.track_var(large_buffer)

    print_stats("Complex data structure analysis")
    finish("complex", args)


if __name__ == "__main__":
    main()
