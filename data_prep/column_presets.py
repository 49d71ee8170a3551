"""Which column of a Hugging Face dataset holds what: presets for the common speech layouts.

A preset names the columns of a well-known layout; each ``source.*_column`` key of the recipe
overrides one of them (``null``: the preset's; ``""``: none, even where the preset names one).
Without a preset the audio is in ``audio`` and the transcript in ``text``.

=============== ========= ==================== ========== ========== ==========================
preset          audio     text                 speaker    language   other
=============== ========= ==================== ========== ========== ==========================
common_voice    audio     sentence             client_id  locale
fleurs          audio     raw_transcription
librispeech     audio     text                 speaker_id
long_audio      audio     text                                       segments: ``{start, end,
                                                                     text[, words]}`` per row
=============== ========= ==================== ========== ========== ==========================

FLEURS (``google/fleurs``) has no speaker column: its ``id`` is the sentence, read by several
speakers. ``raw_transcription`` keeps case and punctuation, which the model writes;
``transcription`` is the lower-cased, unpunctuated form.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal, get_args

PresetName = Literal["common_voice", "fleurs", "librispeech", "long_audio"]
"""Names a recipe's ``source.preset`` accepts."""


@dataclass(frozen=True)
class ColumnMap:
    """The columns a Hugging Face source reads (``None``: the dataset has no such column)."""

    audio: str = "audio"
    """Audio: an ``Audio`` feature (bytes and/or a path), a file path or encoded bytes."""
    text: str | None = "text"
    """The transcript (a row whose segments carry their own text needs none)."""
    speaker: str | None = None
    """The speaker: no speaker is in two splits."""
    language: str | None = None
    """The row's language, a code or a name (``English`` → ``en``); ``None``:
    ``source.language`` for every row."""
    words: str | None = None
    """Word times of the row: a list of ``{word, start, end[, score]}`` (seconds into the row's
    audio) or a whisperX result (``{segments: [{words: [...]}]}``)."""
    segments: str | None = None
    """Segments of a long recording: a list of ``{start, end, text[, words]}`` (seconds into
    the recording; whisperX's output layout), or the same as a dict of lists. Each segment is an
    item of its own, a window of the recording, as a manifest row with ``start``/``end``."""

    def used(self) -> list[str]:
        """The columns named, in field order."""
        return [v for f in fields(self) if (v := getattr(self, f.name))]


PRESETS: dict[str, ColumnMap] = {
    "common_voice": ColumnMap(text="sentence", speaker="client_id", language="locale"),
    "fleurs": ColumnMap(text="raw_transcription"),
    "librispeech": ColumnMap(text="text", speaker="speaker_id"),
    "long_audio": ColumnMap(text="text", segments="segments"),
}
assert set(PRESETS) == set(get_args(PresetName))


def resolve_columns(preset: str | None, **overrides: str | None) -> ColumnMap:
    """The preset's columns (or the defaults) with ``overrides`` applied.

    Args:
        preset: A name in :data:`PRESETS`, or ``None``.
        **overrides: ``audio=…``, ``text=…``, ``speaker=…``, ``language=…``, ``words=…``,
            ``segments=…``: ``None`` keeps the preset's column, ``""`` means no column.

    Raises:
        ValueError: an unknown preset, or ``audio=""``.
    """
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown column preset {preset!r}; presets: {', '.join(PRESETS)}")
    base = PRESETS[preset] if preset else ColumnMap()
    chosen = {k: (v or None) for k, v in overrides.items() if v is not None}
    if "audio" in chosen and chosen["audio"] is None:
        raise ValueError("source.audio_column cannot be empty: every item needs audio")
    return replace(base, **chosen)


def describe_presets() -> str:
    """One line per preset, for error messages: ``name (text=…, speaker=…)``."""

    def named(c: ColumnMap) -> str:
        return ", ".join(f"{f.name}={getattr(c, f.name)}" for f in fields(c) if getattr(c, f.name))

    return "; ".join(f"{name} ({named(c)})" for name, c in PRESETS.items())
