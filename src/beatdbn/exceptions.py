"""One exception family for beatdbn.

Every error a user can cause derives from :class:`BeatdbnError`; its message
names the file or value at fault and, where there is one, the way out. The CLI
catches ``BeatdbnError`` once and exits with code 1 and a one-line message.
"""

__all__ = ["BeatdbnError", "ParameterError", "DataError"]


class BeatdbnError(Exception):
    """Base class of every error beatdbn raises on purpose."""


class ParameterError(BeatdbnError, ValueError):
    """A bad argument or option value: the message quotes it."""


class DataError(BeatdbnError):
    """An input file or store that cannot be used: the message names it."""
