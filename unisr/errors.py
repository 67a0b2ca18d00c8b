"""User-facing errors: raised for bad input, printed by the CLI as one line without a traceback."""


class UnisrError(Exception):
    """An error caused by the user's input (a file, a config, a checkpoint), not by a bug."""
