"""Where a lhotse supervision's audio is: references that ``audio_io.load_audio`` opens in the
worker that decodes them (:class:`~data_prep.audio_io.DeferredAudio`), never at planning time.

Why our decoder and not ``Recording.load_audio``: a recording that is a local file or bytes in
a Shar tar goes through :mod:`data_prep.audio_io` like every other source, so it gets the same
checks and reject reasons (``truncated``, ``non_finite`` …), the same seek-to-the-window block
decoding and the same resampler; a lhotse item and the same audio named in a manifest give
byte-identical shards. lhotse loads only what ``audio_io`` cannot open by itself (URLs, shell
commands, recordings with transforms, channels spread over several files):
:class:`LhotseRecording`.

Shar: lhotse's ``LazySharIterator`` reads every tar member in order, so planning a corpus with
it would read all of its audio; :func:`index_shar_tar` reads only the tar headers (an
uncompressed tar stores each member as one byte range) and :class:`SharMember` reads one
member's bytes when its work unit runs.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from data_prep.audio_io import AudioError, AudioSource

if TYPE_CHECKING:
    from lhotse import Recording

SHAR_METADATA_SUFFIXES = ("json", "nometa")
"""Members of a Shar ``recording`` tar that describe the audio beside them (lhotse's
``AudioTarWriter``); ``KEY.nodata`` marks a cut written without audio."""


@dataclass(frozen=True)
class FileChannels:
    """Some channels of a local audio file (the others belong to other supervisions)."""

    path: str
    channels: tuple[int, ...]
    """0-based channel positions in the file, averaged."""

    def open_audio(self) -> tuple[AudioSource, tuple[int, ...] | None]:
        return self.path, self.channels


@dataclass(frozen=True)
class SharMember:
    """One cut's audio in a Shar ``recording.NNNNNN.tar``: a byte range read when decoded."""

    tar: str
    name: str
    """The member's name, for messages."""
    offset: int
    size: int
    channels: tuple[int, ...] | None = None

    def open_audio(self) -> tuple[AudioSource, tuple[int, ...] | None]:
        label = f"{self.tar}:{self.name}"
        try:
            with open(self.tar, "rb") as f:
                f.seek(self.offset)
                data = f.read(self.size)
        except FileNotFoundError as err:
            raise AudioError("missing_file", label, "the Shar tar is gone: check the path") from err
        if len(data) < self.size:
            raise AudioError(
                "truncated", label, "the tar ends inside this member: copy the Shar shard again"
            )
        return data, self.channels


@dataclass(frozen=True)
class LhotseRecording:
    """A recording lhotse loads (``Recording.load_audio``): a URL, a command, transforms, or
    channels in several files. Only the supervision's window and channels are loaded."""

    recording: Recording
    offset: float
    duration: float
    channels: tuple[int, ...]
    """lhotse channel ids (``Recording.channel_ids``), averaged."""

    def open_audio(self) -> tuple[AudioSource, tuple[int, ...] | None]:
        rec = self.recording
        try:
            samples = rec.load_audio(
                channels=list(self.channels), offset=self.offset, duration=self.duration
            )
        # lhotse's loaders fail with many types (AudioLoadingError, AssertionError, OSError,
        # subprocess and smart_open errors): each is one unusable item, counted, not a crash.
        except Exception as err:
            raise AudioError(
                "unreadable",
                f"lhotse recording {rec.id}",
                f"lhotse cannot load [{self.offset:.2f}, +{self.duration:.2f}] s of it "
                f"({type(err).__name__}: {err}); check its sources {rec.sources}",
            ) from err
        # (channels, frames) or (frames,) → (frames, channels) as load_audio takes arrays
        return (samples.T if samples.ndim == 2 else samples, rec.sampling_rate), None


def index_shar_tar(tar: Path) -> tuple[dict[str, SharMember | None], str | None]:
    """Each cut id's audio member in a Shar ``recording`` tar, from the tar headers alone.

    Returns:
        Cut id → its member (``None`` for a ``KEY.nodata`` placeholder: a cut without audio),
        and why reading stopped early (a truncated or corrupt tar), or ``None``; the members
        found before that point are kept.
    """
    found: dict[str, SharMember | None] = {}
    try:
        # "r:" reads an uncompressed tar, whose members are byte ranges of the file
        with tarfile.open(tar, "r:") as tf:
            for member in tf:
                stem, _, suffix = member.name.rpartition(".")
                if suffix in SHAR_METADATA_SUFFIXES or not member.isfile():
                    continue
                found[stem] = (
                    None
                    if suffix == "nodata"
                    else SharMember(str(tar), member.name, member.offset_data, member.size)
                )
    except (tarfile.TarError, OSError, EOFError) as err:
        return found, f"{type(err).__name__}: {err}"
    return found, None
