"""One exception hierarchy for the whole project.

Every error a user can cause (bad data, bad config, a budget that cannot be met, unreachable storage) is a
``PhonetuneError``; the CLI prints its message and exits with status 1 instead of a traceback. Messages say what
must hold, what was found (file, key, value) and what to do.
"""


class PhonetuneError(Exception):
    """Root of all errors raised on purpose by phonetune."""


class ConfigError(PhonetuneError):
    """A config file or override is invalid: unknown key, wrong type, value out of range."""


class DataError(PhonetuneError):
    """A data root, split or file does not match the HW1P2 layout or contents."""


class BudgetError(PhonetuneError):
    """A model, ensemble or search space cannot fit the parameter budget."""


class StorageError(PhonetuneError):
    """A study storage cannot be reached, or a study does not exist in it."""


class CheckpointError(PhonetuneError):
    """A checkpoint is missing, corrupt, or was made for a different configuration."""
