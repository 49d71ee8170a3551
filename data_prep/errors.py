"""The error an input item carries when it cannot be used: a stable reason code, the file, and
a message giving the fix. The pipeline counts items by ``reason``; nothing is dropped silently.
A source that cannot be read at all (a recipe value found wrong only when reading) raises
:class:`SourceError`, which ends ``vrt-prep run`` with its message."""

from __future__ import annotations

from pathlib import Path
from typing import Literal


class ItemError(Exception):
    """An unusable input item (audio, transcript …).

    Attributes:
        reason: Short stable code, counted in the run's summary and card.
        path: The file, or a label such as ``"<bytes>"`` for in-memory input.
        message: What is wrong and how to fix it.
    """

    def __init__(self, reason: str, path: str | Path, message: str) -> None:
        super().__init__(f"{path}: {message} [{reason}]")
        self.reason = reason
        self.path = str(path)
        self.message = message


class SourceError(ValueError):
    """A source that cannot be read at all (a dataset out of reach, a column it lacks, a synthetic
    voice espeak-ng does not have): the run stops before any work, with a message naming the
    source or the recipe key and the fix. Bad items inside a readable source are never this: they
    are counted rejects (:class:`ItemError`)."""


AudioReason = Literal[
    "missing_file",
    "unreadable",
    "empty",
    "truncated",
    "too_short",
    "non_finite",
    "silent",
    "clipped",
    "missing_channel",
]
"""Stable codes for :class:`AudioError` and :class:`~data_prep.audio_check.AudioCheck`; reports
count items per code."""


class AudioError(ItemError):
    """Audio that cannot be used (:mod:`data_prep.audio_io`); ``reason`` is one of
    :data:`AudioReason`."""

    reason: AudioReason
