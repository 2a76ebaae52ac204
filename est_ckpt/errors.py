"""The one error hierarchy of `est_ckpt`.

Every error the library raises on bad input is an `EstCkptError`, and also a
subclass of the nearest builtin, so callers may catch either. Messages name the
file or key involved and say what to do.
"""

from __future__ import annotations

from typing import Optional


class EstCkptError(Exception):
    """Base class of every error `est_ckpt` raises on bad input."""

    # What the CLI prints instead of the message, where the way out is a flag (`--force`) rather than an
    # argument (`force=True`); None to print the message.
    cli_message: Optional[str] = None

    def for_cli(self, message: str) -> EstCkptError:
        """Sets the CLI's wording of this error; returns the error, to raise."""
        self.cli_message = message
        return self


class CheckpointNotFoundError(EstCkptError, FileNotFoundError):
    """No checkpoint exists at the given path."""


class SymlinkLoopError(EstCkptError, OSError):
    """A path is a loop of symbolic links: it is neither a file nor missing."""


class NotARegularFileError(EstCkptError, OSError):
    """A local path is a FIFO, device or socket: reading it could block or never end."""


class CorruptCheckpointError(EstCkptError, ValueError):
    """A checkpoint file exists but is malformed, truncated or fails a checksum."""


class DestinationExistsError(EstCkptError, FileExistsError):
    """The destination already exists and `force` was not given."""


class MappingError(EstCkptError, ValueError):
    """Variables cannot be matched to checkpoint keys."""


class UnmappedVariablesError(MappingError):
    """Some target variables have no source in the checkpoint."""


class AmbiguousNameError(MappingError):
    """A name is held by several keys of an object-based checkpoint."""


class MismatchError(MappingError):
    """A source and its target disagree in shape or dtype."""


class TransformError(MismatchError):
    """A rule's value transforms do not fit its source and target (shape, dtype, arguments)."""


class RulesFileError(MappingError):
    """A rules file (or preset) cannot be read, or does not follow the rules format."""


class UnusedMappingError(MappingError):
    """An `assignment_map` entry matches nothing."""


class NotAMappingError(EstCkptError, TypeError, AttributeError):
    """An argument that must be a dict is not one (TF's `warm_start` raises `AttributeError` for it)."""


class ConversionError(EstCkptError, ValueError):
    """A checkpoint cannot be converted as asked."""


class FormatError(CorruptCheckpointError):
    """Bytes or text do not follow a checkpoint format; readers re-raise it naming the file."""


class WireError(FormatError):
    """Protocol-buffer, varint or `OrderedCode` bytes do not decode."""


class TableError(FormatError):
    """A LevelDB-format table (a checkpoint's `.index`) is malformed."""


class KeyGrammarError(EstCkptError, ValueError):
    """A string does not follow TF's object-path key grammar."""


class UnsavedStateError(EstCkptError, ValueError):
    """Some state of the model (a table, a SaveableObject) cannot be saved in the checkpoint layout asked for."""


class RemoteTimeoutError(EstCkptError, TimeoutError):
    """A remote store (`s3://`, `gs://`, ...) did not answer within the time allowed."""


class MissingDependencyError(EstCkptError, ImportError):
    """An optional package that this feature needs is not installed; the message names the extra."""


class DestinationNotWritableError(EstCkptError, PermissionError):
    """The destination's directory cannot be written (read-only, or no permission)."""


class GraphModeError(EstCkptError, RuntimeError):
    """A graph-mode API (a Scaffold, a Saver) was called while TensorFlow executes eagerly."""


class InvalidArgumentError(EstCkptError, ValueError):
    """An argument's value is outside what the function accepts (a negative `atol`)."""


class AsyncSaveError(EstCkptError, RuntimeError):
    """A checkpoint written in the background failed; raised by the next save, or when training ends."""
