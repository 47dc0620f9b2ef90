"""User-facing errors: each carries one sentence a person can act on."""

from __future__ import annotations


class Img2MeshError(Exception):
    """A failure the user can cause or fix (bad input, bad option, missing model, offline).

    The message is shown as is: the CLI prints it and exits non-zero, the add-on
    reports it with ``self.report({'ERROR'}, ...)``. Bugs raise other exceptions.

    ``code`` (one of core.protocol.ERROR_CODES), ``field`` (the setting concerned) and
    ``details`` (plain strings) let a caller word the advice its own way: the message
    names command-line flags, the add-on names its panel's settings.
    """

    def __init__(
        self,
        message: str = "",
        *,
        code: str = "",
        field: str = "",
        details: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.details = dict(details or {})


class InputError(Img2MeshError):
    """The image, depth map or mask cannot be used."""


class OptionError(Img2MeshError):
    """An option has a value that makes no sense."""


class ModelUnavailableError(Img2MeshError):
    """Model weights cannot be loaded (offline, no cache, unknown id, bad file)."""


class OutputError(Img2MeshError):
    """The result cannot be written where the user asked."""


class Cancelled(Img2MeshError):
    """The user stopped the run."""

    def __init__(self, message: str = "Reconstruction cancelled.") -> None:
        super().__init__(message)


class MissingExtraError(Img2MeshError):
    """An optional feature's packages are not installed (e.g. diffusers for text prompts)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), or its type's name:
    how a library's error is quoted inside one of our sentences."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
