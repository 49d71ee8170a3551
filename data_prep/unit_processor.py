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
from data_prep.align import make_aligner
from data_prep.align.base import (
    AlignedWord,
    Aligner,
    AlignmentFailure,
    AlignRequest,
    interpolate_missing,
)
from data_prep.config import PrepConfig
from data_prep.segment import Word, gaps, map_to_written, reject_reason, split_at_pauses
from data_prep.shards import UnitShardWriter
from data_prep.sources import SourceItem
from data_prep.spoken_form import NormWord, TranscriptError, clean_transcript, normalize_transcript
from data_prep.unit_result import UnitResult, unit_marker
from vrt_finetune import constants as C
from vrt_finetune.io_utils import atomic_write_text
from vrt_finetune.shard_format import SampleWord, ShardSample, encode_flac
from vrt_finetune.targets import build_targets
from vrt_finetune.tokenizer import StreamingTokenizer, open_tokenizer


def split_of(
    item: SourceItem, valid_fraction: float, test_fraction: float, split_by: str = "speaker"
) -> str:
    """Deterministic split of ``item`` (``shards.split_by``).

    ``speaker``: by speaker when known (no speaker in two splits), else by the recording the
    item is cut from (no recording in two splits: windows of one lecture are not heard in
    training and scored in testing), else by key. ``recording``: the same without speakers.
    ``key``: by key always.
    """
    if item.speaker and split_by == "speaker":
        basis = f"speaker:{item.speaker}"
    elif item.recording and split_by in ("speaker", "recording"):
        basis = f"recording:{item.recording}"
    else:
        basis = f"key:{item.key}"
    x = int.from_bytes(hashlib.sha256(basis.encode()).digest()[:8], "big") / 2**64
    if x < test_fraction:
        return "test"
    if x < test_fraction + valid_fraction:
        return "valid"
    return "train"


@dataclass
class _Prepared:
    item: SourceItem
    audio: np.ndarray
    norm: list[NormWord]
    spoken: list[str]
    long_form: bool = False
    """Longer than ``aligner.max_seconds``: aligned alone by the long-form aligner."""

    use_given: bool = True
    """Pass the item's own word times on (``aligner.use_given_times``)."""

    @property
    def given(self) -> Any:
        """The item's word times, if it has them and they are to be used."""
        return self.item.words if self.use_given else None

    @property
    def request(self) -> AlignRequest:
        """What the aligner is asked: the spoken words and, if the item has them, word times."""
        i = self.item
        return AlignRequest(self.audio, self.spoken, i.language, self.given, self.norm)


class UnitProcessor:
    """Processes work units; one per worker process (holds the tokenizer and the aligner)."""

    def __init__(self, config: PrepConfig) -> None:
        self.config = config
        self.tokenizer: StreamingTokenizer = open_tokenizer(config.tokenizer)
        self.aligner: Aligner = make_aligner(config.aligner, config.source.language)
        # recordings longer than aligner.max_seconds: the aligner's own long-form variant
        self.long_aligner = self.aligner.long_form() if config.aligner.long_form else None
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
        p = _Prepared(item, audio, norm, spoken, use_given=self.config.aligner.use_given_times)
        too_long = len(audio) > C.seconds_to_samples(self.config.aligner.max_seconds)
        if p.given is None and too_long:  # given times need no model, at any length
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
            p.long_form = True
        # refused before it takes a place in a batch (the given aligner: no word timestamps)
        refusal = (self.long_aligner if p.long_form else self.aligner).refusal(p.request)
        if refusal is not None:
            result.reject(item, refusal.reason, f"{item.source}: {refusal.message}")
            return None
        return p

    # -- stage 2 -------------------------------------------------------------------------
    def _align(
        self, batch: Sequence[_Prepared], result: UnitResult
    ) -> list[tuple[_Prepared, list[AlignedWord]]]:
        if not batch:
            return []
        aligner = self.long_aligner if batch[0].long_form else self.aligner
        assert aligner is not None and all(p.long_form == batch[0].long_form for p in batch)
        out = []
        for p, words in zip(batch, aligner.align_batch([p.request for p in batch]), strict=True):
            if isinstance(words, AlignmentFailure):
                result.reject(p.item, words.reason, f"{p.item.source}: {words.message}")
            else:
                out.append((p, words))
        return out

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
        shards = self.config.shards
        split = split_of(p.item, shards.valid_fraction, shards.test_fraction, shards.split_by)
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
            self.tokenizer.ids,
            self.config.targets,
        )
        seconds = len(audio) / C.SAMPLE_RATE
        text = " ".join(w.word for w in words)
        n_text_tokens = sum(len(g.ids) - 1 for g in targets.groups)
        sample = ShardSample(
            key=key,
            text=text,
            duration=seconds,
            targets=targets,
            words=tuple(SampleWord(w.word, w.start, w.end, w.score, w.flagged) for w in words),
            language=item.language,
            speaker=item.speaker,
            source=item.source,
            offset=offset,
        )
        if split not in writers:
            s = self.config.shards
            writers[split] = UnitShardWriter(
                self.config.output_dir, split, result.unit, s.max_samples, s.max_bytes
            )
        writers[split].write(sample, encode_flac(audio))
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
