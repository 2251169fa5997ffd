"""The error every layer may raise for the command line to print: one line and an exit code.

It sits below every package (it imports nothing) so that a helper deep in the analyzers can
refuse bad input with the message the user sees, without importing the commands above it.
"""

from __future__ import annotations


class CliError(Exception):
    """A failure to report to the user as one line, with the process exit code."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
