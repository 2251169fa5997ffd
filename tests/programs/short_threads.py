"""Threads that live far shorter than a flush interval must still be named in the log."""

import json
import threading

import memscope

memscope.init()
threads = [threading.Thread(target=bytearray, args=(1000,), name=f"blink-{i}") for i in range(5)]
for t in threads:
    t.start()
    t.join()
print(json.dumps({t.name: t.ident for t in threads}))
