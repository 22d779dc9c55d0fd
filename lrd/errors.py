"""The exceptions users see. Each message says what is wrong, where, and what to do about it.

The CLI and the stage entry points turn these into one clean line on stderr (no traceback);
anything else escaping is a bug in this project.
"""


class LRDError(Exception):
    """Base class: an error whose message is meant for the user."""


class ConfigError(LRDError):
    """params.yaml (or a CLI option) asks for something invalid."""


class DataError(LRDError):
    """An input file is missing, corrupt or malformed."""


class MissingUpstreamError(LRDError):
    """An output of an earlier stage is missing; the message names the stage to run."""


class ModelError(LRDError):
    """A model cannot be loaded or produced invalid numbers."""


class QueryError(LRDError):
    """A SQL query failed; the message is DuckDB's own (plus, for an unknown table, the tables there are)."""


class DistributedError(LRDError):
    """A process of a multi-process run died or stopped answering."""
