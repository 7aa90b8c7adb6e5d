"""Typed errors raised by the library; only the CLI layer turns them into messages and exit codes.

Every message names the problem and the next step, in one line.
"""


class RnncliError(Exception):
    """Base class: a user-facing failure with a one-line message."""

    exit_code = 1


class UsageError(RnncliError):
    """An option or argument the command cannot work with."""

    exit_code = 2


class DataError(RnncliError):
    """A source archive or prepared dataset that is missing, corrupt or malformed."""


class NotPreparedError(DataError):
    """A command needs a prepared dataset and there is none."""


class NetworkError(DataError):
    """A download failed."""


class ModelError(RnncliError):
    """A model file or folder that is missing, corrupt or not made by rnncli."""


class ExportError(RnncliError):
    """An export that did not match its reference model."""


class TrainingError(RnncliError):
    """Training could not go on (for example a NaN loss)."""


class GraphUnsupported(ExportError):
    """A model that a hand-built ONNX graph does not implement: refused with its reason."""


class MissingExtraError(RnncliError):
    """A command needs packages of an optional extra that is not installed."""
