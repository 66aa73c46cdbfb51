"""Errors that the command line reports as one line, without a traceback."""


class DynarepError(Exception):
    """A problem with the user's input or data: the message names the file, key, shape or value."""


class DataError(DynarepError):
    """A dataset on disk is missing something or holds values of the wrong shape or kind."""


class ConfigError(DynarepError):
    """A configuration value is out of range or unknown."""
