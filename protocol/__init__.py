"""What every stage shares, below all of them: it imports nothing else of memscope.

- :mod:`.wire`: the msgpack envelope, record kinds and allocator domains, column layouts.
- :mod:`.records`: the rec1 / cols1 binary layouts of memory events.
- :mod:`.log_schema`: the Arrow schema of every table of the log.
- :mod:`.addresses`: where a broker's PULL, control and feed sockets are.
- :mod:`.curve`: CURVE keys and socket set-up for authenticated brokers.
- :mod:`.control_client`: the client of a broker's control socket.
"""
