"""``vrt-eval``: streaming WER/CER by delay, glossary recall, forgetting and latency; model card.

Flow (top to bottom)::

    --data (shards | dataset dir + --split | manifest.jsonl)  ─┐
    --general (same kinds, optional)                          ─┼▶ EvalSample lists
    for each --model NAME=DIR[:ADAPTER]: load (base, then peft adapter)
        for each set, each --delays d: greedy_decode ─▶ metrics.score
    ─▶ OUT/metrics.json, OUT/metrics.md, OUT/wer_by_delay.png, OUT/hypotheses.jsonl
    --card ─▶ OUT/README.md (model card)      --check-targets ─▶ target-convention probe instead

Usage::

    vrt-eval --model base=mistralai/Voxtral-Mini-4B-Realtime-2602 \\
             --model tuned=mistralai/Voxtral-Mini-4B-Realtime-2602:runs/med/adapter \\
             --data data/med --split test --general data/general/test \\
             --glossary glossary.txt --delays 240 480 960 --out eval/med \\
             --card --base-model mistralai/Voxtral-Mini-4B-Realtime-2602 \\
             --data-card data/med/README.md --recipe recipes/med.yaml
    vrt-eval --model official=DIR --data data/med --check-targets
    vrt-eval --from-metrics eval/med/metrics.json --card ... --out eval/med   # re-render only
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vrt_finetune import constants as C
from vrt_finetune.metrics import Reference, RefWord, score
from vrt_finetune.wer_normalizer import TextNormalizer, describe, load_spelling_map

log = logging.getLogger(__name__)

DEFAULT_EVAL_DELAYS_MS = (3 * C.TOKEN_MS, C.DEFAULT_DELAY_MS, 12 * C.TOKEN_MS)  # 240, 480, 960
DOMAIN, GENERAL = "domain", "general"
METRICS_FILE, HYPOTHESES_FILE = "metrics.json", "hypotheses.jsonl"


class EvalError(RuntimeError):
    """Bad evaluation inputs: no samples, unreadable manifest, unknown split, …"""


@dataclass(frozen=True)
class ModelSpec:
    """``NAME=DIR[:ADAPTER]`` of ``--model``: a label, a model (dir or hub id), a peft adapter."""

    name: str
    path: str
    adapter: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """``"tuned=base_dir:adapter_dir"`` → spec; without ``NAME=`` the name is the last path
        component. The adapter is split off at the last ``:`` (hub ids have none)."""
        name, sep, rest = text.partition("=")
        if not sep:
            name, rest = "", text
        path, colon, adapter = rest.rpartition(":")
        if not colon or not path:
            path, adapter = rest, ""
        name = name or Path((adapter or path).rstrip("/")).name
        if not name or not path:
            raise argparse.ArgumentTypeError(f"--model {text!r}: expected NAME=DIR[:ADAPTER]")
        return cls(name, path, adapter or None)


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


def _shard_samples(urls: Sequence[str]) -> Iterator[EvalSample]:
    import webdataset as wds

    from vrt_finetune.shard_format import ShardFormatError, decode_flac, from_tar_sample

    raw = wds.tarfile_samples(({"url": u} for u in urls), handler=wds.warn_and_continue)
    for member in raw:
        try:
            sample, flac = from_tar_sample(member)
            words = tuple(RefWord(w.word, w.end, w.flagged) for w in sample.words)
            reference = Reference(sample.text, sample.language, words)
            yield EvalSample(sample.key, decode_flac(flac), reference)
        except ShardFormatError as err:
            log.warning("skipping sample %s: %s", member.get("__key__"), err)


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
    specs: Sequence[str], split: str = "test", max_samples: int | None = None
) -> list[EvalSample]:
    """Read utterances from shard paths/globs/dirs, dataset dirs (``index.json`` + ``split``) or
    JSONL manifests, in the order given; at most ``max_samples`` in all.

    Raises:
        EvalError: a spec matches nothing readable, or no utterance was found.
    """
    from vrt_finetune.data import ShardListError, expand_shards
    from vrt_finetune.shard_format import ShardFormatError, is_dataset_dir, split_shards

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
                yield from _shard_samples(urls)
            else:
                try:
                    yield from _shard_samples(expand_shards(spec))
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
) -> tuple[torch.nn.Module, object]:
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


def _run_probe(args: argparse.Namespace, specs: list[ModelSpec], samples: list[EvalSample]) -> int:
    from vrt_finetune.target_probe import ProbeSample, format_probe_table, probe_targets

    probe = [
        # every word, flagged ones too: the shard's targets were built from all of them
        ProbeSample(s.audio, tuple(w.word for w in ws), tuple(float(w.end or 0.0) for w in ws))
        for s in samples
        if (ws := s.reference.words)
    ]
    if not probe:
        raise EvalError("--check-targets needs utterances with timed words (vrt-prep shards)")
    reports = {}
    for spec in specs:
        model, tok = load_eval_model(spec, args.dtype, args.device, args.tokenizer)
        report = probe_targets(model, tok, probe, args.delays, batch_size=args.batch_size)
        print(f"== {spec.name} ({spec.path}{':' + spec.adapter if spec.adapter else ''})")
        print(format_probe_table(report))
        reports[spec.name] = report.to_json()
        del model
    if args.out:
        from vrt_finetune.io_utils import atomic_write_text

        atomic_write_text(Path(args.out) / "target_probe.json", json.dumps(reports, indent=1))
    return 0


def run(args: argparse.Namespace) -> dict:
    """Evaluate every ``--model``; write and return ``metrics.json``'s content."""
    from vrt_finetune.io_utils import atomic_write_text
    from vrt_finetune.model_card import write_report

    specs = [ModelSpec.parse(m) for m in args.model]
    normalizer = TextNormalizer(load_spelling_map(args.spelling_map) if args.spelling_map else None)
    glossary = load_glossary(args.glossary) if args.glossary else []
    sets = {DOMAIN: load_samples(args.data, args.split, args.max_samples)}
    if args.general:
        sets[GENERAL] = load_samples(args.general, args.split, args.max_samples)
    metrics: dict = {
        "meta": {
            "tool": "vrt-eval",
            "delays_ms": list(args.delays),
            "sets": {
                name: _set_meta(args.data if name == DOMAIN else args.general, args.split, s)
                for name, s in sets.items()
            },
            "glossary": {"file": args.glossary, "terms": len(glossary)} if glossary else None,
            "normalizer": describe(normalizer),
            "decoding": "greedy, frame-synchronous, offline padding",
            "dtype": args.dtype,
        },
        "models": {},
    }
    out = Path(args.out)
    hyp_rows = []
    for spec in specs:
        model, tok = load_eval_model(spec, args.dtype, args.device, args.tokenizer)
        results, rows = evaluate_model(
            model, tok, sets, args.delays, normalizer, glossary, args.batch_size
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


def build_parser() -> argparse.ArgumentParser:
    """The ``vrt-eval`` command line."""
    p = argparse.ArgumentParser(
        prog="vrt-eval",
        description="Streaming evaluation of Voxtral Realtime models: WER/CER by delay, glossary "
        "recall, forgetting on a general set, emission latency; model card; target probe.",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=DIR[:ADAPTER]",
        help="model to evaluate (repeat): HF-format dir or hub id, optional peft adapter",
    )
    p.add_argument(
        "--data",
        nargs="+",
        default=[],
        metavar="DATA",
        help="shards (paths, globs, dirs), a dataset dir with index.json, or .jsonl",
    )
    p.add_argument("--split", default="test", help="split of dataset dirs (default: test)")
    p.add_argument(
        "--general", nargs="+", metavar="DATA", help="general held-out set, to measure forgetting"
    )
    p.add_argument("--glossary", metavar="FILE", help="domain terms, one per line")
    p.add_argument(
        "--delays",
        nargs="+",
        type=int,
        default=list(DEFAULT_EVAL_DELAYS_MS),
        metavar="MS",
        help="delays in ms (default: 240 480 960)",
    )
    p.add_argument("--max-samples", type=int, help="at most this many utterances per set")
    p.add_argument("--batch-size", type=int, default=8, help="utterances per forward")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, help="bf16 | fp16 | fp32 (default: bf16 on GPU)")
    p.add_argument("--tokenizer", help="tekken.json to use (default: the model's own)")
    p.add_argument(
        "--spelling-map",
        metavar="FILE",
        help="Whisper normalizer.json (British→American spellings) for English",
    )
    p.add_argument("--out", default="eval", help="output directory (default: eval)")
    p.add_argument(
        "--check-targets",
        action="store_true",
        help="instead of decoding, rank the 8 UNVERIFIED target conventions by the "
        "model's teacher-forced accuracy",
    )
    p.add_argument("--from-metrics", metavar="FILE", help="skip evaluation: re-render from it")
    card = p.add_argument_group("model card (--card)")
    card.add_argument("--card", action="store_true", help="write OUT/README.md, the model card")
    card.add_argument("--card-model", help="model the card describes (default: the last one)")
    card.add_argument("--base-model", help="hub id of the base model (card front matter)")
    card.add_argument("--data-card", help="link or path of the training data's card")
    card.add_argument("--recipe", help="training recipe YAML (path and key hyper-parameters)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vrt-eval``; returns the exit status (0 ok, 1 evaluation error, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.dtype = args.dtype or ("fp32" if args.device == "cpu" else "bf16")
    if not args.from_metrics and (not args.model or not args.data):
        parser.error("--model and --data are required (or --from-metrics)")
    if args.card and not args.base_model:
        parser.error("--card needs --base-model")
    try:
        for ms in args.delays:
            C.check_delay_ms(ms)
        if args.check_targets:
            specs = [ModelSpec.parse(m) for m in args.model]
            return _run_probe(args, specs, load_samples(args.data, args.split, args.max_samples))
        if args.from_metrics:
            from vrt_finetune.model_card import write_report

            metrics = json.loads(Path(args.from_metrics).read_text(encoding="utf-8"))
            write_report(Path(args.out), metrics)
        else:
            metrics = run(args)
        if args.card:
            from vrt_finetune.model_card import recipe_summary, render_model_card

            card = render_model_card(
                Path(args.out),
                metrics,
                base_model=args.base_model,
                data_card=args.data_card,
                recipe=recipe_summary(args.recipe) if args.recipe else None,
                model=args.card_model,
            )
            print(f"card\t{card}")
    except (EvalError, ValueError, OSError, RuntimeError) as err:
        print(f"vrt-eval: error: {err}", file=sys.stderr)
        return 1
    print(f"metrics\t{Path(args.out) / 'metrics.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
