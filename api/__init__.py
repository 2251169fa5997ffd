"""The public Python API: ``memscope.init``, ``track_var``, ``scope`` and the Tracker.

It sits above the stages it drives: it starts an embedded broker and answers the Tracker's
questions with the analyzers and exporters, in a helper process (:mod:`.offline`).
"""
