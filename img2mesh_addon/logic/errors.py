"""The add-on's user errors: one base class, whose message the operators pass to self.report."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can act on; the message is one readable sentence."""


class WorkerError(UserError):
    """The worker cannot do the job (gone, hung, refused) or the request is unusable."""


class ResultError(UserError, ValueError):
    """A result that cannot be imported."""


class SetupError(UserError):
    """Set up cannot go on."""
