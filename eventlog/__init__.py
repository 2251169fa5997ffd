"""The event log on disk, writer and reader in one place for the broker and the analyzers.

Segments of Arrow batches, rec1 chunks, per-batch checksums, the commit journal, the manifest
(:mod:`.log`), and retention. See ``docs/wire-and-log.md`` for the format.
"""
