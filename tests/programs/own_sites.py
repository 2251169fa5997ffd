"""Known allocations only; memscope's own work (track_var, scopes, stats) must not be traced."""

import json
import os

import memscope

memscope.init()
data = [bytearray(50_000) for _ in range(4)]  # LINE:data
memscope.track_var(data)
with memscope.scope("work"):
    more = {"k": bytearray(60_000)}  # LINE:more
    memscope.track_var(more)
stats = memscope.get_global_tracker().get_stats()
print(json.dumps({"pid": os.getpid(), "active": stats.active_memory}))
