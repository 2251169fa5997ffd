"""Analyzers: independent workers that turn an event log into the six JSON files."""
