"""memscope's own rows (scopes, tracked variables) must not show as the program's memory."""

import json

import memscope

memscope.init()
tracker = memscope.get_global_tracker()
before = tracker.get_stats()
for _ in range(20_000):
    with memscope.scope("hot"):
        pass
after_scopes = tracker.get_stats()
data = [1, 2, 3]
for _ in range(2_000):
    memscope.track_var(data)
after_tracking = tracker.get_stats()
print(
    json.dumps(
        {
            "scopes": after_scopes.active_memory - before.active_memory,
            "tracking": after_tracking.active_memory - after_scopes.active_memory,
        }
    )
)
