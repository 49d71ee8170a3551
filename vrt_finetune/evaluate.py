"""``vrt-eval``: streaming WER/CER by delay, glossary recall, forgetting and latency; model card.

Flow (top to bottom)::

    --data (shards | dataset dir + --split | manifest.jsonl)  ─┐
    --general (same kinds, optional)                          ─┼▶ EvalSample lists
    for each --model NAME=DIR[:ADAPTER]: load (base, then peft adapter)
        for each set, each --delays d: greedy_decode ─▶ metrics.score
    ─▶ OUT/metrics.json, OUT/metrics.md, OUT/wer_by_delay.png, OUT/hypotheses.jsonl
    --card ─▶ OUT/README.md (model card)      --check_targets ─▶ target-convention probe instead

The options are the fields of :class:`~vrt_finetune.eval_config.EvalConfig` (jsonargparse, as
every command here: ``--config FILE``, ``--print_config``, ``vrt-eval --help``). Usage::

    vrt-eval --model base=mistralai/Voxtral-Mini-4B-Realtime-2602 \\
             --model tuned=mistralai/Voxtral-Mini-4B-Realtime-2602:runs/med/adapter \\
             --data data/med --split test --general data/general/test \\
             --glossary glossary.txt --delays 240 480 960 --out eval/med \\
             --card --base_model mistralai/Voxtral-Mini-4B-Realtime-2602 \\
             --data_card data/med/README.md --recipe recipes/med.yaml
    vrt-eval --model official=DIR --data data/med --check_targets
    vrt-eval --from_metrics eval/med/metrics.json --card ... --out eval/med   # re-render only
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vrt_finetune import constants as C
from vrt_finetune.batches import ReadCounts
from vrt_finetune.config_parser import legacy_argv, parse
from vrt_finetune.eval_config import EvalConfig, ModelSpec, eval_parser
from vrt_finetune.metrics import Reference, RefWord, score
from vrt_finetune.wer_normalizer import TextNormalizer, describe, load_spelling_map

if TYPE_CHECKING:
    from vrt_finetune.tokenizer import StreamingTokenizer

log = logging.getLogger(__name__)

DOMAIN, GENERAL = "domain", "general"
METRICS_FILE, HYPOTHESES_FILE = "metrics.json", "hypotheses.jsonl"


class EvalError(RuntimeError):
    """Bad evaluation inputs: no samples, unreadable manifest, unknown split, …"""


@dataclass(frozen=True)
class EvalSample:
    """One utterance to transcribe."""

    key: str
    audio: np.ndarray
    """``(T,)`` float32 16 kHz mono."""
    reference: Reference


def _reference(meta: dict) -> Reference:
    """Reference of a manifest line (``text``, ``language``, optional ``words`` with ``end``)."""
    words = tuple(
        RefWord(str(w["word"]), float(w["end"]), bool(w.get("flagged", False)))
        for w in meta.get("words") or []
        if "end" in w
    )
    return Reference(str(meta.get("text", "")), meta.get("language") or None, words)


def _shard_samples(urls: Sequence[str], counts: ReadCounts) -> Iterator[EvalSample]:
    """Utterances of shards; what cannot be read is counted in ``counts`` (and reported)."""
    from vrt_finetune.batches import UNDECODABLE_AUDIO, read_shard_samples
    from vrt_finetune.shard_format import ShardFormatError, decode_flac

    for sample, flac in read_shard_samples(urls, counts):
        try:
            audio = decode_flac(flac)
        except ShardFormatError as err:
            counts.skip(UNDECODABLE_AUDIO, f"sample {sample.key}: {err}")
            continue
        words = tuple(RefWord(w.word, w.end, w.flagged) for w in sample.words)
        yield EvalSample(sample.key, audio, Reference(sample.text, sample.language, words))


def _manifest_samples(path: Path) -> Iterator[EvalSample]:
    """JSONL lines ``{"audio", "text", "language"?, "key"?, "words"?, "start"?, "end"?}``."""
    from data_prep.audio_io import AudioError, load_audio

    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                audio_path = path.parent / item["audio"]  # absolute paths survive the join
                audio = load_audio(audio_path, item.get("start"), item.get("end"))
            except (KeyError, ValueError, OSError, AudioError) as err:
                raise EvalError(f"{path}:{n}: {err}") from err
            yield EvalSample(str(item.get("key", f"{path.stem}-{n:06d}")), audio, _reference(item))


def load_samples(
    specs: Sequence[str],
    split: str = "test",
    max_samples: int | None = None,
    counts: ReadCounts | None = None,
) -> list[EvalSample]:
    """Read utterances from shard paths/globs/dirs, dataset dirs (``index.json`` + ``split``) or
    JSONL manifests, in the order given; at most ``max_samples`` in all. Shard samples that
    cannot be read are counted by reason in ``counts`` (a JSONL line that cannot be read is an
    error: a manifest is small and hand-made).

    Raises:
        EvalError: a spec matches nothing readable, or no utterance was found.
    """
    from vrt_finetune.data import ShardListError, expand_shards
    from vrt_finetune.shard_format import ShardFormatError, is_dataset_dir, split_shards

    counts = counts if counts is not None else ReadCounts()

    def each() -> Iterator[EvalSample]:
        for spec in specs:
            path = Path(spec).expanduser()
            if spec.endswith(".jsonl"):
                yield from _manifest_samples(path)
            elif is_dataset_dir(path):
                try:
                    urls = split_shards(path, split)
                except ShardFormatError as err:
                    raise EvalError(str(err)) from err
                yield from _shard_samples(urls, counts)
            else:
                try:
                    yield from _shard_samples(expand_shards(spec), counts)
                except ShardListError as err:
                    raise EvalError(str(err)) from err

    samples = list(itertools.islice(each(), max_samples))
    if not samples:
        raise EvalError(f"no utterances found in {list(specs)}")
    return samples


def load_glossary(path: str | Path) -> list[str]:
    """One term per line; blank lines and ``#`` comments skipped, duplicates dropped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    terms = [t.strip() for t in lines if t.strip() and not t.lstrip().startswith("#")]
    return list(dict.fromkeys(terms))


def load_eval_model(
    spec: ModelSpec, dtype: str, device: str, tokenizer: str | None = None
) -> tuple[torch.nn.Module, StreamingTokenizer]:
    """The model of ``spec`` (adapter applied, eval mode) and its tokenizer."""
    from vrt_finetune.lora import load_adapter
    from vrt_finetune.model import load_model
    from vrt_finetune.tokenizer import open_tokenizer

    model = load_model(spec.path, dtype=dtype, device=device)
    if spec.adapter:
        model = load_adapter(model, spec.adapter).to(device)  # PeftModel.from_pretrained + checks
    model.eval()
    return model, open_tokenizer(tokenizer or spec.path)


def evaluate_model(
    model: torch.nn.Module,
    tokenizer,
    sets: dict[str, list[EvalSample]],
    delays_ms: Sequence[int],
    normalizer: TextNormalizer,
    glossary: Sequence[str] = (),
    batch_size: int = 8,
) -> tuple[dict[str, dict[str, dict]], list[dict]]:
    """Decode every set at every delay and score it.

    Returns:
        ``{set: {str(delay_ms): metrics.score(...)}}`` and one hypothesis row per utterance
        (``set, delay_ms, key, language, reference, hypothesis``).
    """
    from vrt_finetune.decode import greedy_decode

    results: dict[str, dict[str, dict]] = {}
    rows: list[dict] = []
    for set_name, samples in sets.items():
        results[set_name] = {}
        terms = glossary if set_name == DOMAIN else ()
        for delay_ms in delays_ms:
            t0 = time.perf_counter()
            decoded = greedy_decode(
                model, tokenizer, [s.audio for s in samples], delay_ms, batch_size=batch_size
            )
            refs = [s.reference for s in samples]
            results[set_name][str(delay_ms)] = score(refs, decoded, normalizer, terms)
            seconds = sum(len(s.audio) for s in samples) / C.SAMPLE_RATE
            log.info(
                "%s @ %d ms: WER %s on %d utterances (%.0f s of audio in %.0f s)",
                set_name,
                delay_ms,
                results[set_name][str(delay_ms)]["wer"],
                len(samples),
                seconds,
                time.perf_counter() - t0,
            )
            rows += [
                {
                    "set": set_name,
                    "delay_ms": delay_ms,
                    "key": s.key,
                    "language": s.reference.language,
                    "reference": s.reference.text,
                    "hypothesis": d.text,
                }
                for s, d in zip(samples, decoded, strict=True)
            ]
    return results, rows


def _set_meta(specs: Sequence[str], split: str, samples: list[EvalSample]) -> dict:
    return {
        "sources": list(specs),
        "split": split,
        "n_utterances": len(samples),
        "hours": round(sum(len(s.audio) for s in samples) / C.SAMPLE_RATE / 3600, 6),
        "languages": sorted({s.reference.language or "unknown" for s in samples}),
    }


def _run_probe(config: EvalConfig, samples: list[EvalSample]) -> int:
    from vrt_finetune.target_probe import ProbeSample, format_probe_table, probe_targets

    probe = [
        # every word, flagged ones too: the shard's targets were built from all of them
        ProbeSample(s.audio, tuple(w.word for w in ws), tuple(float(w.end or 0.0) for w in ws))
        for s in samples
        if (ws := s.reference.words)
    ]
    if not probe:
        raise EvalError("--check_targets needs utterances with timed words (vrt-prep shards)")
    reports = {}
    for spec in config.specs:
        model, tok = load_eval_model(spec, config.dtype, config.device, config.tokenizer)
        report = probe_targets(model, tok, probe, config.delays, batch_size=config.batch_size)
        print(f"== {spec.name} ({spec.path}{':' + spec.adapter if spec.adapter else ''})")
        print(format_probe_table(report))
        reports[spec.name] = report.to_json()
        del model
    if config.out:
        from vrt_finetune.io_utils import atomic_write_text

        atomic_write_text(Path(config.out) / "target_probe.json", json.dumps(reports, indent=1))
    return 0


def run(config: EvalConfig) -> dict:
    """Evaluate every ``--model``; write and return ``metrics.json``'s content."""
    from vrt_finetune.io_utils import atomic_write_text
    from vrt_finetune.model_card import write_report

    normalizer = TextNormalizer(
        load_spelling_map(config.spelling_map) if config.spelling_map else None
    )
    glossary = load_glossary(config.glossary) if config.glossary else []
    skipped = {DOMAIN: ReadCounts(), GENERAL: ReadCounts()}
    sets = {DOMAIN: load_samples(config.data, config.split, config.max_samples, skipped[DOMAIN])}
    if config.general:
        sets[GENERAL] = load_samples(
            config.general, config.split, config.max_samples, skipped[GENERAL]
        )
    for name, counts in skipped.items():
        if counts.skipped:  # never silently out of the WER: reported here and in metrics.json
            log.warning(
                "%s set: %d samples could not be read and are not scored: %s",
                name,
                sum(counts.skipped.values()),
                dict(counts.skipped),
            )
    metrics: dict = {
        "meta": {
            "tool": "vrt-eval",
            "delays_ms": list(config.delays),
            "sets": {
                name: {
                    **_set_meta(config.data if name == DOMAIN else config.general, config.split, s),
                    "skipped": dict(skipped[name].skipped),
                }
                for name, s in sets.items()
            },
            "glossary": {"file": config.glossary, "terms": len(glossary)} if glossary else None,
            "normalizer": describe(normalizer),
            "decoding": "greedy, frame-synchronous, offline padding",
            "dtype": config.dtype,
        },
        "models": {},
    }
    out = Path(config.out)
    hyp_rows = []
    for spec in config.specs:
        model, tok = load_eval_model(spec, config.dtype, config.device, config.tokenizer)
        results, rows = evaluate_model(
            model, tok, sets, config.delays, normalizer, glossary, config.batch_size
        )
        metrics["models"][spec.name] = {"path": spec.path, "adapter": spec.adapter, **results}
        hyp_rows += [{"model": spec.name, **r} for r in rows]
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=1, ensure_ascii=False))
    atomic_write_text(
        out / HYPOTHESES_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in hyp_rows)
    )
    write_report(out, metrics)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vrt-eval``; returns the exit status (0 ok, 1 evaluation error, 2 usage)."""
    argv = sys.argv[1:] if argv is None else argv
    config: EvalConfig = parse(EvalConfig, eval_parser(), legacy_argv(argv, EvalConfig))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = Path(config.out)
    try:
        if config.check_targets:
            samples = load_samples(config.data, config.split, config.max_samples)
            return _run_probe(config, samples)
        if config.from_metrics:
            from vrt_finetune.model_card import write_report

            metrics = json.loads(Path(config.from_metrics).read_text(encoding="utf-8"))
            write_report(out, metrics)
        else:
            metrics = run(config)
        if config.card:
            from vrt_finetune.model_card import recipe_summary, render_model_card

            card = render_model_card(
                out,
                metrics,
                base_model=config.base_model,  # type: ignore[arg-type]  # __post_init__ checks
                data_card=config.data_card,
                recipe=recipe_summary(config.recipe) if config.recipe else None,
                model=config.card_model,
            )
            print(f"card\t{card}")
    except (EvalError, ValueError, OSError, RuntimeError) as err:
        print(f"vrt-eval: error: {err}", file=sys.stderr)
        return 1
    print(f"metrics\t{out / 'metrics.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
