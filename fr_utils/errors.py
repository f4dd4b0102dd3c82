"""Every error fr_utils raises, under one base class, :class:`FrUtilsError`.

Each class also keeps the builtin base it has always had, so ``except ValueError``
(or ``KeyError``, ``RuntimeError``, ...) around a call keeps working::

    FrUtilsError
    ├── FaceImageError        (ValueError)    an image cannot be read, or holds nothing usable
    │   └── NoFaceError                       a photo in which the detector found no face
    ├── DatasetError          (ValueError)    a training data set cannot be used as asked
    ├── PairsFileError        (ValueError)    an LFW pairs file is missing or malformed
    ├── DatasetsNotFound      (FileNotFoundError) the datasets folder is not configured or missing
    ├── WeightsError          (RuntimeError)  the encoder's weights are missing or damaged
    ├── FaceDatabaseError     (RuntimeError)  a face database file cannot be used
    │   └── ModelMismatchError                the database was built with another encoder
    ├── EnrolmentRefused      (ValueError)    strict: the new photo or name resembles someone enrolled
    ├── UnknownPersonError    (KeyError)      a name that is not enrolled
    ├── EmptyDatabaseError    (LookupError)   identification asked of an empty database
    └── FunctionTimedOut      (AssertionError) a checked function ran past its time limit

and three warnings (``UserWarning``): :class:`SkippedImagesWarning`, :class:`SimilarFaceWarning`
and :class:`SimilarNameWarning`.
"""

from __future__ import annotations

import sys


class FrUtilsError(Exception):
    """Base class of every error fr_utils raises on bad input or a bad file."""


class FaceImageError(FrUtilsError, ValueError):
    """An image could not be read, or holds nothing usable."""


class NoFaceError(FaceImageError):
    """A photo in which the face detector found no face."""


class DatasetError(FrUtilsError, ValueError):
    """The data set cannot be used as asked; the message names the folder or value."""


class PairsFileError(FrUtilsError, ValueError):
    """A pairs file is missing or malformed, or names an image that does not exist."""


class DatasetsNotFound(FrUtilsError, FileNotFoundError):
    """The shared datasets folder (``$FR_DATASETS``) is not set, or lacks what was asked for."""


class WeightsError(FrUtilsError, RuntimeError):
    """The encoder's weights are missing, damaged, or do not match their manifest."""


class FaceDatabaseError(FrUtilsError, RuntimeError):
    """The database file cannot be used: corrupt, foreign, unwritable, busy, or of another model."""


class ModelMismatchError(FaceDatabaseError):
    """The database was built with another encoder than the one given."""


class EnrolmentRefused(FrUtilsError, ValueError):
    """A strict enrolment refused: the new photo matches another enrolled person, or the new
    name is confusable with an enrolled one. Nothing of that photo or name was stored."""


class UnknownPersonError(FrUtilsError, KeyError):
    """A name that is not enrolled."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class EmptyDatabaseError(FrUtilsError, LookupError):
    """Identification was asked of a database in which no one is enrolled."""


class RequestRefused(FrUtilsError):
    """``facedoor serve`` refused a request with HTTP ``status`` and ``message``; ``exit_code``
    is what the command line would have exited with for the same input."""

    def __init__(self, status: int, message: str, exit_code: int = 2):
        super().__init__(message)
        self.status, self.exit_code = int(status), exit_code


class FunctionTimedOut(FrUtilsError, AssertionError):
    """A checked function did not return within its time limit (a failed check)."""


def report(error: BaseException | str, status: int, prog: str | None = None) -> int:
    """How the command lines report a failure: ``[prog: ]error: <message>`` on stderr; returns ``status``."""
    print(f"{prog + ': ' if prog else ''}error: {error}", file=sys.stderr)
    return status


class SkippedImagesWarning(UserWarning):
    """Some images of a bulk enrol were skipped; ``.skipped`` lists ``(file, reason)``."""

    def __init__(self, message: str, skipped: list[tuple[str, str]]):
        super().__init__(message)
        self.skipped = skipped


class SimilarFaceWarning(UserWarning):
    """A photo enrolled for one person is within the threshold of another enrolled person;
    ``.matches`` lists ``(photo, other person, distance)``."""

    def __init__(self, message: str, matches: list[tuple[str, str, float]]):
        super().__init__(message)
        self.matches = matches


class SimilarNameWarning(UserWarning):
    """A new name prints like, or differs only in case from, an enrolled one (``.similar``)."""

    def __init__(self, message: str, similar: str):
        super().__init__(message)
        self.similar = similar


class DistillError(FrUtilsError, RuntimeError):
    """``python -m fr_utils.distill`` cannot go on: a bad split, a workdir holding another run,
    a missing or damaged checkpoint or export; the message names the file or value."""
