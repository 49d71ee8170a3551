"""``vrt-transcribe``: hear a model (a base, or a base and its LoRA adapter) on your own recordings.

Per file, top to bottom::

    AUDIO (any container, rate and channel count vrt-prep reads) ─▶ 16 kHz mono
    ─▶ greedy_decode: the streaming decoder vrt-eval scores, one file at a time
         └ each id as it is decided ─▶ the transcript printed while decoding goes on
    ─▶ word times from the [W] frames (vrt_finetune.subtitles)
    ─▶ AUDIO.json (text; words with start, end, emitted; model, adapter, delay), AUDIO.srt,
       AUDIO.vtt: beside the audio (where video players look for NAME.srt), or in --out DIR

A file that cannot be read is reported on stderr, naming it and why, and skipped; the others are
still transcribed and the exit status is 1. The model is loaded once the first file has been
read, so a wrong path fails in a second rather than after loading 4 B parameters.

NOTE: the audio is read with ``data_prep.audio_io`` (libsndfile, ffmpeg for the rest), the reader
vrt-prep's corpora go through; ``tests/test_layering.py`` allows this module that one import, as
it does ``vrt-eval``'s manifests.

The options are the fields of :class:`TranscribeConfig` (jsonargparse, as every command here:
``--config FILE``, ``--print_config``, ``vrt-transcribe --help``)::

    vrt-transcribe meeting.m4a --model mistralai/Voxtral-Mini-4B-Realtime-2602 --delay_ms 480
    vrt-transcribe rec/*.wav --model BASE_DIR:runs/med/checkpoints/last-adapter --out transcripts
"""

from __future__ import annotations

import codecs
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
from jsonargparse import ArgumentParser

from vrt_finetune import constants as C
from vrt_finetune.config_parser import dataclass_parser, legacy_argv, parse, positionals_to_list
from vrt_finetune.decode import Decoded, greedy_decode
from vrt_finetune.eval_config import ModelSpec, device_and_dtype
from vrt_finetune.io_utils import atomic_write_text
from vrt_finetune.subtitles import (
    MAX_CUE_SECONDS,
    MAX_LINE_CHARS,
    TimedWord,
    make_cues,
    timed_words,
    to_srt,
    to_vtt,
)
from vrt_finetune.tokenizer import StreamingTokenizer

log = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".json", ".srt", ".vtt")

TIMES = (
    "seconds from the start of the audio; end: the word's end as the target rule dates it, "
    "emitted minus the delay (the word ended within 80 ms before it); start: estimated, the model "
    "writes no start times; emitted: how much audio the model had heard when it wrote the word"
)
"""What the times in ``AUDIO.json`` mean (written into it)."""

DESCRIPTION = """\
Transcribe audio files with a Voxtral Realtime model (a base, or a base and a LoRA adapter):
the transcript is printed as the model writes it, and AUDIO.json (words with times), AUDIO.srt
and AUDIO.vtt are written beside each file (or in --out DIR). A word's end is when the model
wrote it minus the delay (it ended within the 80 ms before); its start is estimated.

    vrt-transcribe AUDIO... --model BASE[:ADAPTER] [--delay_ms 480] [--out DIR]
    vrt-transcribe talk.mp3 --model mistralai/Voxtral-Mini-4B-Realtime-2602
    vrt-transcribe rec/*.flac --model BASE_DIR:ADAPTER_DIR --delay_ms 960 --out transcripts"""


class TranscribeError(RuntimeError):
    """A file could not be transcribed (the message names it)."""


@dataclass
class TranscribeConfig:
    """What ``vrt-transcribe`` transcribes, with which model, and where it writes."""

    audio: list[str] = field(default_factory=list)
    """Audio files (the positional arguments): wav, flac, ogg, mp3, m4a …, any rate and channel
    count."""
    model: str | None = None
    """``BASE[:ADAPTER]``: a Hugging Face-format model directory or hub id, optionally followed
    by ``:`` and a peft adapter directory (as ``vrt-train`` writes and ``vrt-export`` reads)."""
    delay_ms: int | None = None
    """Transcription delay, a multiple of 80 between 80 and 2400; ``null``: the tokenizer's
    default (480 ms in the released model)."""
    out: str | None = None
    """Directory for ``NAME.json``, ``NAME.srt``, ``NAME.vtt``; ``null``: beside each audio
    file. Existing ones are replaced."""
    max_line_chars: int = MAX_LINE_CHARS
    """Longest subtitle cue, in characters."""
    max_cue_seconds: float = MAX_CUE_SECONDS
    """Longest subtitle cue, in seconds."""
    quiet: bool = False
    """Do not print the transcript (the files are still written)."""
    device: str | None = None
    """``cuda``, ``cpu`` …; ``null``: ``cuda`` when there is one, else ``cpu``."""
    dtype: str | None = None
    """Weights' dtype: ``bf16``, ``fp16`` or ``fp32``; ``null``: ``fp32`` on the CPU, else
    ``bf16``."""
    tokenizer: str | None = None
    """``tekken.json`` to use; ``null``: the model's own."""

    def __post_init__(self) -> None:
        if not self.model or not self.audio:
            raise ValueError("give audio files and --model BASE[:ADAPTER]")
        ModelSpec.parse(self.spec_text)
        if self.delay_ms is not None:
            C.check_delay_ms(self.delay_ms)
        if self.max_line_chars < 1 or self.max_cue_seconds <= 0:
            raise ValueError("--max_line_chars and --max_cue_seconds must be positive")
        self.device, self.dtype = device_and_dtype(self.device, self.dtype)
        seen: dict[Path, str] = {}
        inputs = {Path(a).resolve() for a in self.audio}
        for audio in self.audio:
            stem = output_stem(audio, self.out).resolve()
            if stem in seen and seen[stem] != audio:
                raise ValueError(
                    f"{seen[stem]} and {audio} would both write {stem}.json/.srt/.vtt: "
                    "rename one, or transcribe them with different --out directories"
                )
            seen[stem] = audio
            if any(path in inputs for path in output_paths(stem)):
                raise ValueError(
                    f"{audio}: its outputs ({stem}.json/.srt/.vtt) would replace "
                    "an input file; use --out DIR"
                )

    @property
    def spec_text(self) -> str:
        # a NAME= prefix, so that a "=" inside a path is never read as one
        return f"transcribe={self.model}"

    @property
    def spec(self) -> ModelSpec:
        """``model`` parsed."""
        return ModelSpec.parse(self.spec_text)


def output_stem(audio: str | Path, out: str | Path | None) -> Path:
    """``DIR/NAME`` (``out`` given) or ``AUDIO_DIR/NAME``, ``NAME`` being the audio file's name
    without its extension: the outputs are :func:`output_paths` of it."""
    path = Path(audio)
    return Path(out) / path.stem if out is not None else path.with_suffix("")


def output_paths(stem: Path) -> list[Path]:
    """``STEM.json``, ``STEM.srt``, ``STEM.vtt``."""
    return [stem.with_name(stem.name + suffix) for suffix in OUTPUT_SUFFIXES]


class LiveText:
    """The transcript of a generated id stream, handed on piece by piece as the ids arrive.

    The pieces join into ``parse_stream``'s transcript (leading spaces dropped; trailing ones
    are printed): text ids are turned into UTF-8 bytes and decoded incrementally with the
    ``errors="replace"`` rule that ``decode`` of the whole run follows, so a character split over
    several ids appears once it is complete. ``[W]``, ``[P]`` and other control ids write
    nothing; nothing after EOS is shown.
    """

    def __init__(self, tokenizer: StreamingTokenizer, write: Callable[[str], object]) -> None:
        self._tokenizer = tokenizer
        self._write = write
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = False
        self._ended = False

    def feed(self, token_id: int) -> None:
        """Take the next generated id."""
        if self._ended:
            return
        if token_id == self._tokenizer.eos_id:
            self.close()
        elif not self._tokenizer.is_special(token_id):
            self._show(self._utf8.decode(self._tokenizer.text_bytes(token_id)))

    def close(self) -> None:
        """End of the stream: show what an incomplete character left (as U+FFFD)."""
        if not self._ended:
            self._ended = True
            self._show(self._utf8.decode(b"", final=True))

    def _show(self, text: str) -> None:
        if not self._started:
            text = text.lstrip()
            self._started = bool(text)
        if text:
            self._write(text)


@dataclass(frozen=True)
class Transcript:
    """One file's decoding and its word times."""

    audio: str
    duration: float
    """Seconds of audio."""
    delay_ms: int
    decoded: Decoded
    words: list[TimedWord]

    def to_json(self, spec: ModelSpec) -> dict:
        return {
            "audio": self.audio,
            "model": spec.path,
            "adapter": spec.adapter,
            "delay_ms": self.delay_ms,
            "duration": round(self.duration, 3),
            "decoding": "greedy, frame-synchronous, offline padding",
            "text": self.decoded.text,
            "times": TIMES,
            "words": [w.to_json() for w in self.words],
        }


def transcribe(
    model: torch.nn.Module,
    tokenizer: StreamingTokenizer,
    audio: np.ndarray,
    delay_ms: int,
    label: str = "<audio>",
    on_text: Callable[[str], object] | None = None,
) -> Transcript:
    """Decode one recording and date its words.

    Args:
        audio: ``(T,)`` float32 16 kHz mono.
        delay_ms: transcription delay (validated).
        label: the file's name, for the result and errors.
        on_text: given the transcript piece by piece while decoding goes on (``LiveText``).
    """
    live = LiveText(tokenizer, on_text) if on_text is not None else None
    [decoded] = greedy_decode(
        model,
        tokenizer,
        [audio],
        delay_ms,
        batch_size=1,
        on_token=None if live is None else lambda _, token: live.feed(token),
    )
    if live is not None:
        live.close()
    duration = len(audio) / C.SAMPLE_RATE
    return Transcript(label, duration, delay_ms, decoded, timed_words(decoded.words, duration))


def write_outputs(
    transcript: Transcript, stem: Path, spec: ModelSpec, max_chars: int, max_seconds: float
) -> list[Path]:
    """``STEM.json``, ``STEM.srt`` and ``STEM.vtt`` (atomically); returns their paths."""
    cues = make_cues(transcript.words, max_chars, max_seconds)
    paths = output_paths(stem)
    texts = (
        json.dumps(transcript.to_json(spec), indent=1, ensure_ascii=False) + "\n",
        to_srt(cues),
        to_vtt(cues),
    )
    for path, text in zip(paths, texts, strict=True):
        atomic_write_text(path, text)
    return paths


def run(config: TranscribeConfig, stdout: TextIO | None = None) -> int:
    """Transcribe every file of ``config``; returns the exit status (1 if any file failed).

    Raises:
        RuntimeError, ValueError, OSError: the model, adapter or tokenizer cannot be loaded, or
            an output cannot be written.
    """
    from data_prep.audio_io import AudioError, load_audio
    from vrt_finetune.evaluate import load_eval_model

    stdout = stdout or sys.stdout
    spec = config.spec

    def write(text: str) -> None:
        stdout.write(text)
        stdout.flush()

    loaded: tuple[torch.nn.Module, StreamingTokenizer, int] | None = None
    failed = 0
    for path in config.audio:
        try:
            audio = load_audio(path)
        except AudioError as err:  # names the file and what is wrong with it
            print(f"vrt-transcribe: error: {err}", file=sys.stderr)
            failed += 1
            continue
        if loaded is None:  # once a file could be read
            model, tok = load_eval_model(spec, config.dtype, config.device, config.tokenizer)
            loaded = model, tok, C.check_delay_ms(config.delay_ms or tok.default_delay_ms)
        model, tok, delay_tokens = loaded
        delay_ms = delay_tokens * C.TOKEN_MS
        if len(config.audio) > 1 and not config.quiet:
            write(f"==> {path} <==\n")
        t0 = time.perf_counter()
        transcript = transcribe(
            model, tok, audio, delay_ms, str(path), None if config.quiet else write
        )
        if not config.quiet:
            write("\n")
        written = write_outputs(
            transcript,
            output_stem(path, config.out),
            spec,
            config.max_line_chars,
            config.max_cue_seconds,
        )
        print(
            f"{path}: {transcript.duration:.1f} s of audio in {time.perf_counter() - t0:.1f} s, "
            f"{len(transcript.words)} words at {delay_ms} ms; wrote "
            + ", ".join(map(str, written)),
            file=sys.stderr,
        )
    if failed:
        print(f"vrt-transcribe: {failed} of {len(config.audio)} files failed", file=sys.stderr)
    return 1 if failed else 0


def transcribe_parser(exit_on_error: bool = True) -> ArgumentParser:
    """The ``vrt-transcribe`` command line: the keys of :class:`TranscribeConfig`."""
    return dataclass_parser(
        TranscribeConfig,
        prog="vrt-transcribe",
        description=DESCRIPTION,
        exit_on_error=exit_on_error,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vrt-transcribe``; returns the exit status (0 ok, 1 a file or the model failed,
    2 usage)."""
    argv = sys.argv[1:] if argv is None else argv
    argv = legacy_argv(positionals_to_list(argv, "audio", TranscribeConfig), TranscribeConfig)
    config: TranscribeConfig = parse(TranscribeConfig, transcribe_parser(), argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(config)
    except (ValueError, OSError, RuntimeError) as err:
        print(f"vrt-transcribe: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
