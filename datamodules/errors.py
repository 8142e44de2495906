"""The data side's user-facing error: one line naming the path and what is wrong."""


class DataError(ValueError):
    """Bad or missing data (a path, a file, a transform name). The CLI prints it and exits with 2."""
