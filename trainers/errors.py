"""Errors the trainers raise on purpose; the CLI turns each into a one-line message and exit 1."""


class TrainerError(Exception):
    """Base of every problem the trainers understand; ``str(error)`` is the message to show."""


class DataError(TrainerError):
    """The data cannot be read or cannot train the requested model."""


class UnreadableData(DataError):
    """A file that is missing, empty or does not parse as CSV."""


class MissingTarget(DataError):
    """The target column is not in the data."""


class InvalidTarget(DataError):
    """A target that does not fit the task (text for regression, a single class…)."""


class TooFewRows(DataError):
    """Not enough rows (or rows per class) for the held-out split or the folds."""


class ConfigurationError(TrainerError):
    """A kind, task, metric or hyperparameter that cannot be used as given."""


class TrainingFailed(TrainerError):
    """scikit-learn refused to fit the pipeline (usually a hyperparameter value)."""


class ChampionUnusable(TrainerError):
    """The current champion cannot be loaded safely or scored on the held-out rows."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
