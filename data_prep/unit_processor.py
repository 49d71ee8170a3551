"""The work of one ``vrt-prep`` work unit: items → aligned, filtered, targeted samples → shards.

Flow of one work unit (``items_per_unit`` consecutive input items, a pure function of them):

1. read and check audio, clean and normalise the transcript (``audio_io``, ``spoken_form``);
2. align the spoken words, batched through the acoustic model (``data_prep.align``), or take
   the timestamps the data already has; a recording longer than ``aligner.max_seconds`` is
   aligned on its own, the long-form way (``data_prep.align.longform``);
3. map times back onto the written words, split long recordings at pauses, filter (``segment``);
4. build the delay-independent ``[P]``/``[W]`` stream (``targets``) and write ``KEY.flac`` +
   ``KEY.json`` into the unit's own shards (``shards``);
5. write ``_units/unit-NNNNN.json`` last: a unit with a marker is finished and is skipped by a
   rerun; a unit without one is redone from scratch and rewrites identical files.

Separate from :mod:`data_prep.pipeline`, which plans the units and runs them in this process or a
worker pool: this module is what each worker holds (the tokenizer, the aligner, the VAD).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from data_prep import audio_check, audio_io
from data_prep.align.base import AlignedWord, Aligner, AlignmentFailure, interpolate_missing
from data_prep.align.given import match_given
from data_prep.config import PrepConfig
from data_prep.segment import Word, gaps, map_to_written, reject_reason, split_at_pauses
from data_prep.shards import UnitShardWriter
from data_prep.sources import SourceItem
from data_prep.spoken_form import NormWord, TranscriptError, clean_transcript, normalize_transcript
from data_prep.targets import TargetIds, build_targets
from data_prep.unit_result import UnitResult, unit_marker
from vrt_finetune import constants as C
from vrt_finetune.io_utils import atomic_write_text
from vrt_finetune.tokenizer import StreamingTokenizer, load_tokenizer


def split_of(item: SourceItem, valid_fraction: float, test_fraction: float) -> str:
    """Deterministic split: by speaker when known (no speaker in two splits), else by key."""
    basis = f"speaker:{item.speaker}" if item.speaker else f"key:{item.key}"
    x = int.from_bytes(hashlib.sha256(basis.encode()).digest()[:8], "big") / 2**64
    if x < test_fraction:
        return "test"
    if x < test_fraction + valid_fraction:
        return "valid"
    return "train"


def make_aligner(config: PrepConfig) -> Aligner | None:
    """The configured aligner (``None`` for ``given`` timestamps)."""
    a = config.aligner
    if a.backend == "given":
        return None
    if a.backend == "whisperx":
        from data_prep.align.whisperx_backend import WhisperXAligner

        return WhisperXAligner(
            language=config.source.language, model=a.model, device=a.device, batch_size=a.batch_size
        )
    from data_prep.align.mms_backend import MMSAligner

    return (
        MMSAligner.from_bundle(device=a.device, batch_size=a.batch_size)
        if a.model is None
        else MMSAligner.from_pretrained(a.model, device=a.device, batch_size=a.batch_size)
    )


@dataclass
class _Prepared:
    item: SourceItem
    audio: np.ndarray
    norm: list[NormWord]
    spoken: list[str]
    given: list[AlignedWord] | None
    long_form: bool = False
    """Longer than ``aligner.max_seconds``: aligned alone by the long-form aligner."""


class UnitProcessor:
    """Processes work units; one per worker process (holds the tokenizer and the aligner)."""

    def __init__(self, config: PrepConfig) -> None:
        self.config = config
        self.tokenizer: StreamingTokenizer = load_tokenizer(config.tokenizer)
        self.ids = TargetIds.from_tokenizer(self.tokenizer)
        self.aligner = make_aligner(config)
        self.long_aligner: Aligner | None = None
        if config.aligner.long_form and self.aligner is not None:  # torch is loaded by now
            from data_prep.align.longform import LongFormAligner
            from data_prep.align.longform_backends import supports_long_form

            if supports_long_form(self.aligner):
                self.long_aligner = LongFormAligner(self.aligner)
        self._vad: Any = None

    # -- stage 1 -------------------------------------------------------------------------
    def _prepare(self, item: SourceItem, result: UnitResult) -> _Prepared | None:
        if item.error is not None:
            result.reject(item, *item.error)
            return None
        try:
            text = clean_transcript(item.text or "")
            norm = normalize_transcript(text, item.language)
        except TranscriptError as err:
            result.reject(item, err.reason, f"{item.source}: {err}")
            return None
        spoken = [s for n in norm for s in n.spoken]
        if not spoken:
            result.reject(
                item,
                "empty_transcript",
                f"{item.source}: transcript has no speakable words after cleaning",
            )
            return None
        try:
            audio = audio_io.load_audio(item.audio, item.start, item.end)  # type: ignore[arg-type]
        except audio_io.AudioError as err:
            result.reject(item, err.reason, f"{item.source}: {err}")
            return None
        result.input_seconds += len(audio) / C.SAMPLE_RATE
        check = audio_check.check_audio(audio, min_seconds=self.config.filters.min_duration)
        if not check.ok:
            result.reject(item, str(check.reason), f"{item.source}: {'; '.join(check.notes)}")
            return None
        given = None
        long_form = False
        if item.words is not None:
            given = self._given_spoken(item, norm, spoken, len(audio) / C.SAMPLE_RATE)
        elif len(audio) > C.seconds_to_samples(self.config.aligner.max_seconds):
            if self.long_aligner is None:
                result.reject(
                    item,
                    "too_long_to_align",
                    f"{item.source}: {len(audio) / C.SAMPLE_RATE:.0f} s is longer than "
                    f"aligner.max_seconds={self.config.aligner.max_seconds:.0f} and "
                    "long-form alignment is off (aligner.long_form, whisperx/mms backends); "
                    "give word timestamps (alignment column) or start/end windows",
                )
                return None
            long_form = True
        elif self.aligner is None:
            result.reject(
                item,
                "no_timestamps",
                f"{item.source}: aligner 'given' but the item has no word timestamps",
            )
            return None
        return _Prepared(item, audio, norm, spoken, given, long_form)

    @staticmethod
    def _given_spoken(
        item: SourceItem, norm: list[NormWord], spoken: list[str], duration: float
    ) -> list[AlignedWord]:
        """Put the item's given word times on its spoken words.

        When the given words are the transcript's written words one for one (synthetic speech,
        most CTM/TextGrid files), each written word's span is shared by its spoken words
        ("42" → "forty two"); otherwise words are matched by their letters (``match_given``)
        and what cannot be matched is interpolated and flagged.
        """
        assert item.words is not None
        written = [n for n in norm if n.spoken]
        if len(written) != len(item.words):
            return match_given(item.words, spoken, duration)
        out = []
        for n, g in zip(written, item.words, strict=True):
            k = len(n.spoken)
            step = (g.end - g.start) / k
            out += [
                AlignedWord(s, g.start + j * step, g.start + (j + 1) * step, g.score)
                for j, s in enumerate(n.spoken)
            ]
        return out

    # -- stage 2 -------------------------------------------------------------------------
    def _align(
        self, batch: Sequence[_Prepared], result: UnitResult
    ) -> list[tuple[_Prepared, list[AlignedWord]]]:
        out = [(p, p.given) for p in batch if p.given is not None]
        todo = [p for p in batch if p.given is None]
        if todo:
            aligner = self.long_aligner if todo[0].long_form else self.aligner
            assert aligner is not None and all(p.long_form == todo[0].long_form for p in todo)
            aligned = aligner.align_batch([(p.audio, p.spoken, p.item.language) for p in todo])
            for p, words in zip(todo, aligned, strict=True):
                if isinstance(words, AlignmentFailure):
                    result.reject(p.item, words.reason, f"{p.item.source}: {words.message}")
                else:
                    out.append((p, words))
        order = {p.item.key: i for i, p in enumerate(batch)}
        return sorted(out, key=lambda pw: order[pw[0].item.key])  # type: ignore[arg-type]

    # -- stage 3/4 -----------------------------------------------------------------------
    def _emit(
        self,
        p: _Prepared,
        spoken: list[AlignedWord],
        writers: dict[str, UnitShardWriter],
        result: UnitResult,
    ) -> None:
        f = self.config.filters
        duration = len(p.audio) / C.SAMPLE_RATE
        if len(spoken) != len(p.spoken) or any(w is None for w in spoken):
            spoken = interpolate_missing(p.spoken, list(spoken), duration)
        words = map_to_written(p.norm, spoken)
        split = split_of(
            p.item, self.config.shards.valid_fraction, self.config.shards.test_fraction
        )
        skip = self._stretches_to_skip(p.audio, words, duration)
        segments = split_at_pauses(words, duration, f.max_duration, skip)
        for n, (seg_start, seg_end, seg_words) in enumerate(segments):
            key = p.item.key if len(segments) == 1 else f"{p.item.key}_s{n:03d}"
            seg_dur = seg_end - seg_start
            reason = reject_reason(seg_words, seg_dur, f)
            if reason is not None:
                result.reject(
                    p.item,
                    reason,
                    f"{p.item.source} [{seg_start:.2f}-{seg_end:.2f} s]"
                    f": rejected by filter {reason}",
                )
                continue
            audio = p.audio[C.seconds_to_samples(seg_start) : C.seconds_to_samples(seg_end)]
            self._write(p.item, key, split, audio, seg_words, seg_start, writers, result)

    def _write(
        self,
        item: SourceItem,
        key: str,
        split: str,
        audio: np.ndarray,
        words: list[Word],
        offset: float,
        writers: dict[str, UnitShardWriter],
        result: UnitResult,
    ) -> None:
        targets = build_targets(
            [w.word for w in words],
            [w.end for w in words],
            len(audio),
            self.tokenizer.encode,
            self.ids,
            self.config.targets,
        )
        seconds = len(audio) / C.SAMPLE_RATE
        text = " ".join(w.word for w in words)
        n_text_tokens = sum(len(g.ids) - 1 for g in targets.groups)
        meta = {
            "text": text,
            "language": item.language,
            "speaker": item.speaker,
            "duration": round(seconds, 4),
            "source": item.source,
            "offset": round(offset, 4),
            "words": [w.to_json() for w in words],
            "targets": targets.to_json(),
        }
        if split not in writers:
            s = self.config.shards
            writers[split] = UnitShardWriter(
                self.config.output_dir, split, result.unit, s.max_samples, s.max_bytes
            )
        writers[split].write(key, audio_io.write_flac_bytes(audio), meta, seconds)
        result.samples.append(
            {
                "split": split,
                "seconds": round(seconds, 4),
                "words": len(words),
                "tokens": n_text_tokens,
                "flagged": sum(w.flagged for w in words),
                "language": item.language,
                "speaker": item.speaker,
                "text": text,
            }
        )

    def _stretches_to_skip(
        self, audio: np.ndarray, words: list[Word], duration: float
    ) -> list[int]:
        """Indices (``segment.gaps``) of unlabelled stretches to leave out of the samples."""
        f = self.config.filters
        skip = []
        for i, start, end in gaps(words, duration):
            if end - start > f.max_gap:
                skip.append(i)
            elif f.vad and end - start > f.vad_min_gap:
                piece = audio[C.seconds_to_samples(start) : C.seconds_to_samples(end)]
                if self._has_speech(piece):
                    skip.append(i)
        return skip

    def _has_speech(self, audio: np.ndarray) -> bool:
        """silero-vad (its model ships inside the wheel) hears speech in ``audio``."""
        import torch
        from silero_vad import get_speech_timestamps, load_silero_vad

        if self._vad is None:
            self._vad = load_silero_vad()
        found = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(audio)), self._vad, sampling_rate=C.SAMPLE_RATE
        )
        return bool(found)

    def run_unit(self, unit: int, items: Sequence[SourceItem]) -> UnitResult:
        """Process one unit completely and write its marker (atomic, last)."""
        result = UnitResult(unit, len(items))
        writers: dict[str, UnitShardWriter] = {}
        try:
            bs = max(1, self.config.aligner.batch_size)
            prepared: list[_Prepared] = []
            for item in items:
                p = self._prepare(item, result)
                if p is not None and p.long_form:
                    # alone, in input order: the batch so far first, then the long recording,
                    # so no other recording's audio waits in memory beside it
                    for batch in (prepared, [p]):
                        for pp, spoken in self._align(batch, result):
                            self._emit(pp, spoken, writers, result)
                    prepared = []
                    continue
                if p is not None:
                    prepared.append(p)
                if len(prepared) >= bs:
                    for pp, spoken in self._align(prepared, result):
                        self._emit(pp, spoken, writers, result)
                    prepared = []
            for pp, spoken in self._align(prepared, result):
                self._emit(pp, spoken, writers, result)
            for split in sorted(writers):
                result.shards += writers[split].close()
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        marker = unit_marker(self.config.output_dir, unit)
        atomic_write_text(marker, json.dumps(result.to_json(), sort_keys=True))
        return result
