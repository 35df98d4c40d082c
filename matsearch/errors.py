"""Domain exceptions. Errors a user can cause carry a one-sentence message that says what to change."""


class MatsearchError(Exception):
    """Base class for errors the user can fix; the CLI prints the message and exits with code 2."""


class SpecError(MatsearchError):
    """The run spec is malformed, inconsistent or names something that does not exist."""


class DataError(MatsearchError):
    """A reference dataset is missing, unreadable or does not cover what the run needs."""


class RunStoreError(MatsearchError):
    """A run directory is missing, locked by another process or was written by an incompatible version."""


class ModelError(MatsearchError):
    """An MLIP checkpoint or model name cannot be loaded."""


class ExportError(MatsearchError):
    """An export cannot be written where asked (e.g. into a folder that already holds other files)."""


class RunInterrupted(MatsearchError):
    """A run stopped part-way (an LLM server went away, a model file is missing); `resume` continues it."""


class DftInputError(MatsearchError):
    """A DFT result cannot be ingested: unreadable, unfinished, unconverged or matching no candidate."""


class ExportWarning(UserWarning):
    """Something the exported files lack (e.g. forces of runs stored before they were kept)."""
