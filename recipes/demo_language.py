"""``make demo-language``: teach the demo's English base a language it never heard, on CPU.

The new-language story end to end, every stage the toolkit's own command:

1. the demo's English base (``make demo`` trains it; when ``BASE_DIR/base-model`` is missing this
   script trains it first, the same way, which adds the base's ~10 minutes);
2. Spanish sentences spoken by three espeak-ng voices with exact word times → shards
   (``recipes/data/synthetic_spanish.yaml``), one more Spanish voice held out as a test set of
   its own, and Russian sentences for the dataset card's tokenizer-fertility check (Cyrillic
   falls apart into byte pieces under the demo's capped tokenizer);
3. LoRA on encoder and decoder plus the audio→text projector and the token embedding (tied with
   the output head), at the served delay (480 ms), Spanish with as many English sentences
   replayed beside it (``recipes/train/demo_language.yaml``, which lists what else was tried);
4. ``vrt-eval`` of base against adapted on held-out Spanish (before/after), on English
   (forgetting) and on the held-out voice at 240, 480 and 960 ms (an adapter trained at one
   delay serves that one): WER and median emission latency, the model card and the plot;
5. ``vrt-export`` of the merged model;
6. ``vrt-transcribe`` of new Spanish recordings (wav, mp3, ogg) with the adapted model: the
   transcript as it is emitted, word times as JSON, SRT and VTT.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from pathlib import Path

from vrt_recipes import DATA_RECIPES, TRAIN_RECIPES, demo

SPANISH_RECIPE = DATA_RECIPES / "synthetic_spanish.yaml"
LANGUAGE_RECIPE = TRAIN_RECIPES / "demo_language.yaml"
DEFAULT_N_SPANISH = 1200
DEFAULT_STEPS = 600
DELAYS_MS = (240, 480, 960)
HELD_OUT_VOICE = {"name": "es", "variant": "m3"}
N_HELD_OUT = 120
N_RUSSIAN = 100
_FERTILITY = re.compile(r"^([\d.]+) text tokens per word \((.*)\)\.$", re.M)


def _stage(n: int, text: str, t0: float) -> None:
    print(f"\n[{n}/6] {text}  (t = {time.perf_counter() - t0:.0f} s)", flush=True)


def ensure_base(base_root: Path, t0: float) -> tuple[Path, Path]:
    """The demo's tokenizer and English base under ``base_root``; trained here when missing."""
    tokenizer, base = base_root / "tokenizer", base_root / "base-model"
    if (base / "config.json").exists() and tokenizer.exists():
        print(f"  English base: {base}")
        return tokenizer, base
    print(f"  no English base under {base_root}: training it as `make demo` does (~10 min)")
    tok = demo.make_tokenizer(base_root)
    demo.prepare_general(
        base_root / "shards", "demo-general", tok.path, demo.DEFAULT_N_GENERAL, None
    )
    print(
        f"  base training, {demo.DEFAULT_BASE_STEPS} steps (t = {time.perf_counter() - t0:.0f} s)"
    )
    return tok.path, demo.train_base(base_root, tok.path, demo.DEFAULT_BASE_STEPS)


def prepare_language(
    out: Path, tokenizer: Path, n: int, report_sets: bool = True
) -> dict[str, dict]:
    """Spanish shards and, with ``report_sets``, the held-out Spanish voice and the Russian
    shards the demo reports on (the language proof needs neither); returns each run's summary."""
    runs = {
        "spanish": demo.prepare(
            out / "shards_es", "demo-spanish", tokenizer, n, 0, 0, recipe=SPANISH_RECIPE
        )
    }
    if not report_sets:
        return runs
    runs["held-out voice"] = demo.prepare(
        out / "shards_es_held_out_voice", "demo-es-held-out-voice", tokenizer, N_HELD_OUT, 0, 7,
        recipe=SPANISH_RECIPE,
        extra={"source.voices": [HELD_OUT_VOICE], "shards.valid_fraction": 0.0,
               "shards.test_fraction": 1.0},
    )  # fmt: skip
    runs["russian"] = demo.prepare(
        out / "shards_ru", "demo-russian", tokenizer, N_RUSSIAN, 0, 0, recipe=SPANISH_RECIPE,
        extra={"source.language": "ru", "source.vocabulary": "general",
               "source.voices": [{"name": "ru"}]},
    )  # fmt: skip
    return runs


def fertility(dataset: Path) -> tuple[float, str]:
    """Tokens per word and the verdict, as the dataset card states them."""
    found = _FERTILITY.search((dataset / "README.md").read_text())
    if found is None:
        raise ValueError(f"{dataset}/README.md: no tokenizer-fertility line")
    return float(found.group(1)), found.group(2)


def adapt(out: Path, base: Path, english: Path, steps: int) -> Path:
    """``vrt-train`` the adapter on Spanish plus English replay; returns the adapter."""
    spanish = out / "shards_es"
    n_spanish = json.loads((spanish / "index.json").read_text())["splits"]["train"]["samples"]
    replay = demo.replay_shards(english, "train", n_spanish)
    print(f"  {n_spanish} Spanish samples, {len(replay)} English shards replayed beside them")
    return demo.train(
        LANGUAGE_RECIPE,
        out / "train_language",
        [
            "--model.base_model",
            str(base),
            "--data.train_shards",
            json.dumps([str(spanish / "train"), *replay]),
            "--data.val_shards",
            str(spanish / "valid"),
            "--trainer.max_steps",
            str(steps),
            "--trainer.val_check_interval",
            str(steps),
        ],
    )


def table(models: dict, voice: dict, delays: list[int]) -> str:
    """Markdown: WER on Spanish, the held-out voice and English, latency, per model and delay."""
    rows = ["| model | delay | Spanish WER | held-out voice WER | English WER | median latency |"]
    rows.append("|---|---|---|---|---|---|")
    for name, results in models.items():
        for ms in map(str, delays):
            es, en = results["domain"][ms], results["general"][ms]
            held = f"{voice[name]['domain'][ms]['wer']:.1%}" if name in voice else "-"
            latency = es["latency"]["median"]  # None: no word emitted
            latency = "-" if latency is None else f"{latency * 1000:.0f} ms"
            rows.append(
                f"| {name} | {ms} ms | {es['wer']:.1%} | {held} | {en['wer']:.1%} | {latency} |"
            )
    return "\n".join(rows)


def write_recordings(out: Path, n: int = 3) -> list[Path]:
    """New Spanish sentences (a seed no split used) as wav 8 kHz, mp3 and ogg: a team's files."""
    from data_prep.sentences import sentence_corpus
    from data_prep.synth import synthesize
    from vrt_finetune.constants import SAMPLE_RATE

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (text, ext) in enumerate(zip(sentence_corpus(n, 777, "basic", "es"),
                                        ("wav", "mp3", "ogg"), strict=False)):  # fmt: skip
        utt = synthesize(text, voice="es", rate_wpm=160)
        path = out / f"grabacion_{i + 1}.{ext}"
        pcm = (utt.audio.clip(-1, 1) * 32767).astype("<i2").tobytes()
        extra = ["-ar", "8000"] if ext == "wav" else []
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-f", "s16le", "-ar", str(SAMPLE_RATE),
             "-ac", "1", "-i", "pipe:0", *extra, str(path)],
            input=pcm, check=True,
        )  # fmt: skip
        (out / f"grabacion_{i + 1}.txt").write_text(text + "\n")
        files.append(path)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-dir", type=Path, default=Path("outputs/demo"),
                        help="where `make demo` left the tokenizer and base-model")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("outputs/demo_language"))
    parser.add_argument("--n-spanish", type=int, default=DEFAULT_N_SPANISH)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--delays", type=int, nargs="+", default=list(DELAYS_MS))
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    base_root: Path = args.base_dir.resolve()

    _stage(1, "the demo's English base", t0)
    tokenizer, base = ensure_base(base_root, t0)

    _stage(2, "Spanish and Russian corpora → shards (vrt-prep)", t0)
    summaries = prepare_language(out, tokenizer, args.n_spanish)
    for name, s in summaries.items():
        print(f"  {name}: {s['kept_samples']} samples kept, {s['rejected']} rejected")
    for name, d in (("English", base_root / "shards"), ("Spanish", out / "shards_es"),
                    ("Russian", out / "shards_ru")):  # fmt: skip
        if (d / "README.md").exists():
            value, verdict = fertility(d)
            print(f"  tokenizer fertility, {name}: {value:.2f} tokens per word ({verdict})")

    _stage(3, f"LoRA + projector + embeddings on Spanish, {args.steps} steps (vrt-train)", t0)
    adapter = adapt(out, base, base_root / "shards", args.steps)

    _stage(4, "evaluation, base vs adapted (vrt-eval)", t0)
    models = {"base": str(base), "adapted": f"{base}:{adapter}"}
    results = demo.evaluate(
        models,
        out / "shards_es",
        args.delays,
        out / "eval",
        *("--general", str(base_root / "shards"), "--max_samples", "120"),
        *("--card", "--base_model", "vrt-finetune/demo-tiny-base"),
        *("--data_card", str(out / "shards_es" / "README.md"), "--recipe", str(LANGUAGE_RECIPE)),
    )
    voice = demo.evaluate({"adapted": models["adapted"]}, out / "shards_es_held_out_voice",
                          args.delays, out / "eval_held_out_voice")  # fmt: skip
    summary = table(results, voice, args.delays)
    (out / "eval" / "language.md").write_text(summary + "\n")
    print(summary)

    _stage(5, "merged export (vrt-export)", t0)
    demo.export(base, adapter, out / "export")

    _stage(6, "new Spanish recordings through the adapted model (vrt-transcribe)", t0)
    from vrt_finetune.transcribe import main as transcribe_main

    files = write_recordings(out / "recordings")
    for f in files:
        print(f"  {f.name}: said {f.with_suffix('.txt').read_text().strip()!r}")
    code = transcribe_main([*map(str, files), "--model", f"{base}:{adapter}", "--delay_ms", "480",
                            "--out", str(out / "transcripts"), "--device", "cpu"])  # fmt: skip
    if code != 0:
        raise SystemExit(f"vrt-transcribe failed ({code})")

    print(f"\ndone in {time.perf_counter() - t0:.0f} s. Outputs under {out}/:")
    for path, what in (
        ("shards_es/README.md", "dataset card (Spanish)"),
        ("shards_ru/README.md", "dataset card (Russian: the fertility warning)"),
        ("eval/README.md", "model card"),
        ("eval/language.md", "the table above"),
        ("eval/wer_by_delay.png", "WER by delay"),
        ("export/hf", "merged, Hugging Face format"),
        ("transcripts/", "word times of the new recordings: JSON, SRT, VTT"),
    ):
        print(f"  {path:28s} {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
