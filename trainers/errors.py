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


class RegistryError(TrainerError):
    """The registry refused a request or could not be reached.

    ``status`` is the HTTP status (None when no answer came) and ``problem`` the problem+json body
    it answered with (``type``, ``title``, ``status``, ``detail``, ``errors``), empty when it had none.
    """

    def __init__(self, message: str, status: int | None = None, problem: dict | None = None):
        super().__init__(message)
        self.status = status
        self.problem = problem or {}

    @property
    def detail(self) -> str:
        """What the registry said to change (the problem's ``detail``, else its ``title``), or the message."""
        return str(self.problem.get("detail") or self.problem.get("title") or self)


class RegistryUnreachable(RegistryError):
    """Connection refused, unknown host or no answer within the timeout."""


class TokenRejected(RegistryError):
    """The registry answered 401 or 403 to our token."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
