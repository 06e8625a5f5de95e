"""Errors that a user can fix: each carries a one-line message naming the file, key or value."""


class SrbenchError(Exception):
    """Base class of user-facing errors; the CLI prints ``str(error)`` on one line and exits with
    ``exit_status`` (2: a usage error; 1: the system refused, as for an ``OSError``)."""

    exit_status = 2


def error_reason(error: BaseException) -> str:
    """The first line of ``error``'s message (a library's may run to many), or its type's name
    when it has none: the reason in a one-line refusal."""
    message = str(error).strip()
    return message.splitlines()[0] if message else type(error).__name__


class DownloadError(SrbenchError):
    """A download failed, or its checksum did not match."""


class UnsafeArchiveError(SrbenchError):
    """An archive entry would be written outside the extraction directory."""


class InvalidImageError(SrbenchError):
    """An input image is missing, unreadable or of an unsupported kind."""
