"""Errors that reach the user, each with the exit status the CLI documents.

Every layer raises these; the CLI prints the message as one line and exits with
`exit_code`. Messages say what went wrong and, where there is one, what to do.
"""


class DatamonError(Exception):
    """A user error: bad name, unknown ref, refused overwrite (exit 1)."""

    exit_code = 1
    code = "user_error"


class InvalidName(DatamonError):
    code = "invalid_name"


class NotFound(DatamonError):
    code = "not_found"


class AlreadyExists(DatamonError):
    code = "already_exists"


class AmbiguousRef(DatamonError):
    code = "ambiguous"


# Paths inside a bundle (the Python API and fsspec). They are also the built-in OSError or
# ValueError a Python caller expects (pandas and fsspec test for FileNotFoundError).


class InvalidPath(DatamonError, ValueError):
    """A path that escapes the bundle ('..', a leading '/') or holds a name a bundle cannot."""

    code = "invalid_path"


class PathNotFound(NotFound, FileNotFoundError):
    code = "not_found"


class IsADirectory(DatamonError, IsADirectoryError):
    code = "is_a_directory"


class NotADirectory(DatamonError, NotADirectoryError):
    code = "not_a_directory"


class ConfigError(DatamonError):
    code = "config"


class StoreUnavailable(DatamonError):
    """The store (or the daemon) cannot be reached (exit 3)."""

    exit_code = 3
    code = "unavailable"


class IntegrityError(DatamonError):
    """Corrupt or hostile content read from a store or cache (exit 4)."""

    exit_code = 4
    code = "integrity"


class KeyNotFound(Exception):
    """A store key is absent. Internal: layers above turn it into NotFound or IntegrityError."""
