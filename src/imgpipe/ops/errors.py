"""The one error the operator commands raise on purpose."""

from __future__ import annotations


class OpsError(Exception):
    """A problem the operator can act on; the CLI prints its message as one line."""
