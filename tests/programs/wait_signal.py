"""Prints "ready", then sleeps until a signal ends it."""

import sys
import time

print("ready", flush=True)
if len(sys.argv) > 1 and sys.argv[1] == "self-kill":
    import os
    import signal

    time.sleep(2.0)  # many flush intervals: the process has announced itself
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(60)
