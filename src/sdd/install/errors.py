"""The one error the installer raises, carrying the next step for the person at the terminal.

An install fails for reasons the user can usually fix (no network, a missing compiler, no root), so the
error keeps the *what* and the *how to fix it* apart: the CLI prints both, and tests can assert on each.
"""

from __future__ import annotations


class InstallError(Exception):
    """A runtime could not be installed or found; `hint` says what to do about it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message
