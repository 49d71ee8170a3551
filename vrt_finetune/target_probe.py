"""Which target convention was the released model trained with? Teacher-forced accuracy says.

Three details of the target stream are UNVERIFIED (``docs/model_contract.md``,
``vrt_finetune.targets``): whether a group's text carries a leading space, whether a group that
overruns the next one's frame makes it wait or merges with it, and whether an end-of-stream
token follows the last word. A model trained with one convention predicts that convention's
next token best. So, for each of the 8 combinations, the probe rebuilds every utterance's targets
from its stored words and end times (``build_targets``), lays them out at each delay
(``layout_example``), runs one teacher-forced forward per batch, and counts how often the
argmax equals the target, over all target positions and separately over ``[W]``, text, ``[P]``
and EOS targets. The best-scoring convention comes first. Streams without EOS get one more
``[P]`` where EOS would be, so that the end of the stream is scored under both rules.

Reading the table: conventions whose targets are identical on the probe data tie (no overruns
in the data: ``wait`` = ``merge``); ``ProbeReport.distinguishable`` says which choices the data
could tell apart at all. Use real speech of the model's languages, a few dozen utterances with
some fast speech (overruns), and the official weights; a random model scores near 0 everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from vrt_finetune import constants as C
from vrt_finetune.features import LogMel
from vrt_finetune.layout import IGNORE_INDEX, StreamExample, layout_example
from vrt_finetune.targets import TargetOptions, build_targets
from vrt_finetune.tokenizer import StreamIds, StreamingTokenizer

CONVENTIONS: tuple[TargetOptions, ...] = tuple(
    TargetOptions(leading_space=space, overrun=overrun, eos=eos)
    for space in (True, False)
    for overrun in ("wait", "merge")
    for eos in (False, True)
)
"""All 8 combinations; the first is ``vrt_finetune.targets``' default."""

CLASSES = ("all", "word", "text", "pad", "eos")
"""Target classes scored: every position, ``[W]``, text tokens, ``[P]``, EOS."""


@dataclass(frozen=True)
class ProbeSample:
    """One utterance with the word end times its targets are built from."""

    audio: np.ndarray
    """``(T,)`` float32 16 kHz mono."""
    words: tuple[str, ...]
    ends: tuple[float, ...]
    """End of each word in seconds from the start of ``audio``."""


@dataclass
class ConventionScore:
    """Teacher-forced argmax hits of one convention, by target class."""

    options: TargetOptions
    correct: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))

    def accuracy(self, cls: str = "all") -> float | None:
        """Share of ``cls`` targets predicted exactly; ``None`` if there were none."""
        return self.correct[cls] / self.total[cls] if self.total[cls] else None

    @property
    def label(self) -> str:
        o = self.options
        return (
            f"space={'yes' if o.leading_space else 'no'} overrun={o.overrun} "
            f"eos={'yes' if o.eos else 'no'}"
        )

    def add(self, pred: torch.Tensor, labels: torch.Tensor, tok: StreamingTokenizer) -> None:
        """Count one batch: ``pred`` and ``labels`` are ``(B, S)`` int64 on the CPU."""
        target = labels != IGNORE_INDEX
        special = labels < tok.tekken.num_special_tokens
        masks = {
            "all": target,
            "word": labels == tok.word_id,
            "text": target & ~special,
            "pad": labels == tok.pad_id,
            "eos": labels == tok.eos_id,
        }
        hit = pred == labels
        for cls, mask in masks.items():
            self.correct[cls] += int((hit & mask).sum())
            self.total[cls] += int(mask.sum())

    def to_json(self) -> dict:
        return {
            "options": {
                "leading_space": self.options.leading_space,
                "overrun": self.options.overrun,
                "eos": self.options.eos,
            },
            "accuracy": {cls: self.accuracy(cls) for cls in CLASSES},
            "targets": dict(self.total),
        }


@dataclass
class ProbeReport:
    """Scores best-first, and which choices the probe data could tell apart."""

    scores: list[ConventionScore]
    distinguishable: dict[str, bool]
    """``leading_space``/``overrun``/``eos`` → whether flipping it changes any target stream."""
    n_samples: int
    delays_ms: list[int]

    def to_json(self) -> dict:
        return {
            "n_samples": self.n_samples,
            "delays_ms": self.delays_ms,
            "distinguishable": self.distinguishable,
            "ranking": [s.to_json() for s in self.scores],
        }


def _collate(examples: Sequence[StreamExample], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Right-pad ids with [P], labels with IGNORE, audio with silence (the model is causal)."""
    n, s = len(examples), max(len(ex.input_ids) for ex in examples)
    ids = torch.full((n, s), pad_id, dtype=torch.long)
    labels = torch.full((n, s), IGNORE_INDEX, dtype=torch.long)
    audio = torch.zeros(n, s * C.SAMPLES_PER_TOKEN)
    for row, ex in enumerate(examples):
        ids[row, : len(ex.input_ids)] = torch.from_numpy(ex.input_ids)
        labels[row, : len(ex.labels)] = torch.from_numpy(ex.labels)
        audio[row, : len(ex.audio)] = torch.from_numpy(ex.audio)
    return ids, labels, audio


def _distinguishable(streams: dict[TargetOptions, list[tuple[int, ...]]]) -> dict[str, bool]:
    flips = {
        "leading_space": lambda o: replace(o, leading_space=not o.leading_space),
        "overrun": lambda o: replace(o, overrun="merge" if o.overrun == "wait" else "wait"),
        "eos": lambda o: replace(o, eos=not o.eos),
    }
    return {
        name: any(streams[o] != streams[flip(o)] for o in streams if flip(o) in streams)
        for name, flip in flips.items()
    }


def _probe_stream(
    sample: ProbeSample, tok: StreamingTokenizer, ids: StreamIds, options: TargetOptions
) -> tuple[int, ...]:
    """The targets of ``options``; without EOS, extended with [P] over the frame where EOS
    would be.

    NOTE: the last stream token has no successor, so its position is never scored. Without the
    extension, an ``eos=False`` stream is a prefix of the ``eos=True`` one and an EOS-trained
    model would score 100 % on it too; with it, both conventions are scored on the same frames
    and differ exactly at the end: EOS or [P] there.
    """

    def build(o: TargetOptions) -> tuple[int, ...]:
        return build_targets(
            sample.words, sample.ends, len(sample.audio), tok.encode, ids, o
        ).stream

    stream = build(options)
    if options.eos:
        return stream
    return stream + (ids.pad,) * (len(build(replace(options, eos=True))) - len(stream))


@torch.inference_mode()
def probe_targets(
    model: torch.nn.Module,
    tokenizer: StreamingTokenizer,
    samples: Sequence[ProbeSample],
    delays_ms: Sequence[int] = (C.DEFAULT_DELAY_MS,),
    batch_size: int = 4,
    conventions: Sequence[TargetOptions] = CONVENTIONS,
) -> ProbeReport:
    """Teacher-forced per-token accuracy of ``model`` under each target convention.

    Batches keep the order of ``samples`` (row ``b`` of batch ``k`` is sample
    ``k * batch_size + b``), one forward per (convention, delay, batch).

    Args:
        model: a Voxtral Realtime model (peft-wrapped or not); anything called as
            ``model(input_ids=(B, S), input_features=(B, 128, S·8), num_delay_tokens=d,
            use_cache=False)`` that returns ``.logits`` ``(B, S, vocab)`` will do.
        tokenizer: the model's tokenizer.
        samples: utterances with word end times.
        delays_ms: delays to lay the targets out at; counts are summed over them.
        batch_size: utterances per forward.
        conventions: the target options to compare.

    Returns:
        a ``ProbeReport`` whose ``scores`` are sorted by overall, then text, then ``[W]``
        accuracy, best first (ties keep the order of ``conventions``).
    """
    if not samples:
        raise ValueError("the target probe needs utterances with word times (shards from vrt-prep)")
    device = next(model.parameters()).device
    dtype = getattr(model, "dtype", torch.float32)
    log_mel = LogMel().to(device)
    ids = tokenizer.ids
    streams: dict[TargetOptions, list[tuple[int, ...]]] = {}
    scores = []
    was_training = model.training
    model.eval()
    try:
        for options in conventions:
            streams[options] = [_probe_stream(s, tokenizer, ids, options) for s in samples]
            score = ConventionScore(options)
            for delay_ms in delays_ms:
                examples = [
                    layout_example(
                        stream,
                        s.audio,
                        bos_id=tokenizer.bos_id,
                        pad_id=tokenizer.pad_id,
                        n_left_pad_tokens=tokenizer.n_left_pad_tokens,
                        delay_ms=delay_ms,
                    )
                    for stream, s in zip(streams[options], samples, strict=True)
                ]
                for first in range(0, len(examples), batch_size):
                    input_ids, labels, audio = _collate(
                        examples[first : first + batch_size], tokenizer.pad_id
                    )
                    logits = model(
                        input_ids=input_ids.to(device),
                        input_features=log_mel(audio.to(device)).to(dtype),  # (B, 128, S·8)
                        num_delay_tokens=C.check_delay_ms(delay_ms),
                        use_cache=False,
                    ).logits  # (B, S, vocab)
                    score.add(logits.argmax(-1).cpu(), labels, tokenizer)
            scores.append(score)
    finally:
        model.train(was_training)

    def rank(s: ConventionScore) -> tuple[float, float, float]:
        return (-(s.accuracy() or 0.0), -(s.accuracy("text") or 0.0), -(s.accuracy("word") or 0.0))

    return ProbeReport(
        scores=sorted(scores, key=rank),
        distinguishable=_distinguishable(streams),
        n_samples=len(samples),
        delays_ms=list(delays_ms),
    )


def format_probe_table(report: ProbeReport) -> str:
    """Plain-text table of a probe, best convention first, with notes on ties."""

    def pct(x: float | None) -> str:
        return "     -" if x is None else f"{100 * x:6.2f}"

    header = f"{'convention':<38} {'all':>6} {'[W]':>6} {'text':>6} {'[P]':>6} {'EOS':>6}"
    lines = [
        f"teacher-forced accuracy (%) on {report.n_samples} utterances at "
        f"{', '.join(f'{d} ms' for d in report.delays_ms)}",
        header,
        "-" * len(header),
    ]
    for s in report.scores:
        lines.append(f"{s.label:<38} " + " ".join(pct(s.accuracy(c)) for c in CLASSES))
    for name, seen in report.distinguishable.items():
        if not seen:
            lines.append(
                f"note: {name} does not change any target on these utterances, so its rows tie"
            )
    return "\n".join(lines)
