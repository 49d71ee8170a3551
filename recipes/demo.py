"""``make demo``: the main job end to end on an embedded default, on CPU, nothing downloaded.

1. an offline test tokenizer (capped vocabulary, 8 left-pad tokens to keep sequences short);
2. a synthetic corpus spoken by espeak-ng with exact word times: general sentences and
   sentences carrying medical terms, prepared into shards by ``vrt-prep`` (dataset cards); the
   medical ones also aligned from the audio by PocketSphinx (what the LoRA trains on), scored
   against the exact times (``vrt-prep score``) and written as an inspection page
   (``vrt-prep inspect``);
3. a tiny model trained from random initialisation on the general shards (``vrt-train``,
   ``recipes/train/demo_base.yaml``: the "base");
4. LoRA fine-tuning of the base on the medical shards with as many general sentences replayed
   beside them (``recipes/train/demo_medical.yaml``);
5. ``vrt-eval`` of base against fine-tuned at several delays on the held-out medical sentences
   (exact times): WER, glossary recall, forgetting on general sentences, latency; the model
   card and the WER-by-delay plot;
6. ``vrt-export`` of the merged model in Hugging Face and Mistral formats.

Every stage is the toolkit's own command, so the demo is also the tutorial. It lives with the
recipes (``vrt_recipes``), above both pipelines, and reads its recipes from its own package, so
it runs the same from a checkout (``make demo``) and from an installed wheel (``vrt-demo``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from vrt_recipes import DATA_RECIPES, TRAIN_RECIPES

from data_prep.cli import run as prep_run
from data_prep.config import load_config
from data_prep.sentences import MEDICAL_TERMS
from vrt_finetune.shard_format import read_index
from vrt_finetune.testing import make_test_tokenizer
from vrt_finetune.tokenizer import StreamingTokenizer

DATA_RECIPE = DATA_RECIPES / "synthetic_demo.yaml"
BASE_RECIPE = TRAIN_RECIPES / "demo_base.yaml"
MEDICAL_RECIPE = TRAIN_RECIPES / "demo_medical.yaml"

# The embedded default (measured on 2 cores, see recipes/train/demo_base.yaml): 2400 general
# sentences, because with 600 the model memorised its training sentences (train CE 0.02,
# held-out WER 18 %); two delays, because a third one slowed learning markedly.
DEFAULT_N_GENERAL = 2400
DEFAULT_N_MEDICAL = 480
DEFAULT_BASE_STEPS = 2400
DEFAULT_TUNE_STEPS = 300
DELAYS_MS = (240, 960)
BASE_VOICES: tuple[dict, ...] = (
    {"name": "en-us"},
    {"name": "en-us", "pitch": 30},
    {"name": "en-us", "pitch": 70},
)
"""espeak-ng voices of the base's general sentences (``source.voices``, drawn per sentence, every
voice in every split); empty: ``en-us`` alone. Three pitches of one voice, because other
speakers cost more steps than the demo has (2 cores, 2400 steps, held-out WER at 240 / 960 ms):
``en-us`` alone 2.1 / 4.1 %; these three pitches 6.0 / 4.7 %; ``en-us``, ``en-us+f3``,
``en-us+m3`` 25.7 / 27.6 %; ``en-us``, ``en-us+f3`` at pitch 60, ``en-gb+m3`` 32.0 / 35.3 %.
:data:`HELD_OUT_VOICE` measures how far that carries to a speaker it never heard."""
# One more voice, never trained on, is a held-out set of its own: does the model depend on the
# voice it heard?
HELD_OUT_VOICE = {"name": "en-us", "variant": "m1", "pitch": 40}
N_HELD_OUT_VOICE = 200


def _stage(n: int, text: str, t0: float) -> None:
    print(f"\n[{n}/6] {text}  (t = {time.perf_counter() - t0:.0f} s)", flush=True)


def prepare(
    out: Path,
    name: str,
    tokenizer: Path,
    n_general: int,
    n_medical: int,
    seed: int,
    glossary: Path | None = None,
    aligner: str = "given",
    reference: Path | None = None,
    extra: dict | None = None,
    recipe: Path = DATA_RECIPE,
) -> dict:
    """``vrt-prep`` of the synthetic source into ``out``; returns the run's summary.

    ``aligner="given"`` keeps espeak-ng's exact word times; another backend aligns the audio
    itself and ignores them (``aligner.use_given_times: false``), as it would real recordings.
    ``reference``: a dataset with the true times, scored against (``DIR/score/``, the card).
    ``extra``: more recipe keys (``{"source.voices": [...]}``); ``recipe``: the data recipe.
    """
    overrides = {
        "name": name,
        "output": str(out),
        "tokenizer": str(tokenizer),
        "source.n_general": n_general,
        "source.n_medical": n_medical,
        "source.seed": seed,
        "shards.valid_fraction": 0.05,
        "shards.test_fraction": 0.1,
        "glossary": str(glossary) if glossary else None,
        "aligner.backend": aligner,
        "aligner.use_given_times": aligner == "given",
        "reference": str(reference) if reference else None,
        **(extra or {}),
    }
    config = load_config(recipe, [f"{k}={json.dumps(v)}" for k, v in overrides.items()])
    summary = prep_run(config, progress=False)
    assert summary is not None
    return summary


def prepare_general(out: Path, name: str, tokenizer: Path, n: int, glossary: Path | None) -> dict:
    """The base's general sentences, in :data:`BASE_VOICES` when there are any."""
    voices = {"source.voices": list(BASE_VOICES), "shards.split_by": "key"} if BASE_VOICES else {}
    return prepare(out, name, tokenizer, n, 0, 0, glossary, extra=voices)


def prepare_held_out_voice(out: Path, tokenizer: Path, n: int = N_HELD_OUT_VOICE) -> dict:
    """Other general sentences (seed 5) in :data:`HELD_OUT_VOICE`, all of them a test split."""
    extra = {
        "source.voices": [HELD_OUT_VOICE],
        "shards.valid_fraction": 0.0,
        "shards.test_fraction": 1.0,
    }
    return prepare(out, "demo-held-out-voice", tokenizer, n, 0, 5, extra=extra)


def evaluate(models: dict[str, str], data: Path, delays: list[int], out: Path, *more: str) -> dict:
    """``vrt-eval`` of ``models`` (name → ``BASE[:ADAPTER]``) on ``data``'s test split; returns
    ``metrics.json``'s models."""
    from vrt_finetune.evaluate import main as eval_main

    args = [a for name, spec in models.items() for a in ("--model", f"{name}={spec}")]
    args += ["--data", str(data), "--delays", *map(str, delays)]
    code = eval_main([*args, "--device", "cpu", "--dtype", "fp32", "--out", str(out), *more])
    if code != 0:
        raise SystemExit(f"vrt-eval failed ({code})")
    return json.loads((out / "metrics.json").read_text())["models"]


def export(base: Path, adapter: Path, out: Path) -> None:
    """``vrt-export`` of base + adapter, merged, in Hugging Face and Mistral formats."""
    from vrt_finetune.export import main as export_main

    args = ["--base", str(base), "--adapter", str(adapter), "--out", str(out)]
    code = export_main([*args, "--dtype", "fp32", "--overwrite"])
    if code != 0:
        raise SystemExit(f"vrt-export failed ({code})")


def wer_line(results: dict, part: str = "domain") -> str:
    """``240 ms 5.1 %, 960 ms 6.3 %`` from one model's ``metrics.json`` entry."""
    return ", ".join(f"{ms} ms {r['wer']:.1%}" for ms, r in results[part].items())


def print_alignment_check(out: Path) -> dict:
    """The PocketSphinx-aligned medical shards against espeak-ng's exact times (what
    ``vrt-prep`` scored, ``reference:``) and their inspection page (``vrt-prep inspect``);
    returns the overall figures."""
    from data_prep.inspect_page import write_inspection_page

    score = json.loads((out / "shards_medical" / "score" / "score.json").read_text())
    page = write_inspection_page(out / "shards_medical", out / "inspect.html")
    s = score["overall"]
    print(
        f"  PocketSphinx vs exact times: {s['matched']} words, mean start/end error "
        f"{s['mean_start_ms']:.0f}/{s['mean_end_ms']:.0f} ms, median "
        f"{s['median_start_ms']:.0f}/{s['median_end_ms']:.0f} ms, within 20/50/100 ms: "
        f"{100 * s['within_20ms']:.0f}/{100 * s['within_50ms']:.0f}/"
        f"{100 * s['within_100ms']:.0f} % (shards_medical/score/); page: {page}"
    )
    return s


def train(recipe: Path, out: Path, overrides: list[str]) -> Path:
    """``vrt-train fit``; returns the last checkpoint's model/adapter directory."""
    from vrt_finetune.train import main as train_main

    ckpt = out / "checkpoints"
    # A rerun of the demo trains afresh: checkpoints of an earlier run would linger beside the
    # new ones (and a shorter run's `last` would be ambiguous).
    shutil.rmtree(ckpt, ignore_errors=True)
    args = [
        "fit",
        "--config",
        str(recipe),
        "--trainer.default_root_dir",
        str(out),
        "--checkpoint.dirpath",
        str(ckpt),
        "--trainer.logger.init_args.save_dir",
        str(out),
        "--trainer.enable_progress_bar",
        "false",
        *overrides,
    ]
    code = train_main(args)
    if code not in (0, None):
        raise SystemExit(f"vrt-train failed ({code})")
    return ckpt / "last-adapter"


def make_tokenizer(out: Path) -> StreamingTokenizer:
    """The demo's offline test tokenizer: 4096 ids, 8 left-pad tokens (short sequences)."""
    return make_test_tokenizer(out / "tokenizer", vocab_size=4096, n_left_pad_tokens=8)


def replay_shards(dataset: Path, split: str, n_samples: int) -> list[str]:
    """The first shards of ``dataset``'s ``split`` holding at least ``n_samples`` samples.

    Fine-tuning on domain sentences alone made the demo's base forget general speech (general
    WER 5 % → 84 %); mixing in about as many general sentences as domain ones (replay, a
    standard remedy) kept most of it.
    """
    index = read_index(dataset)
    picked: list[str] = []
    total = 0
    for shard in sorted(index["shards"], key=lambda s: s["name"]):
        if shard["split"] != split or total >= n_samples:
            continue
        picked.append(str(dataset / shard["name"]))
        total += shard["n_samples"]
    return picked


def train_base(out: Path, tokenizer: Path, steps: int, extra: Sequence[str] = ()) -> Path:
    """``vrt-train`` the base from random init on ``out/shards``; returns ``out/base-model``.
    ``extra``: more ``vrt-train`` arguments."""
    full = train(
        BASE_RECIPE,
        out / "train_base",
        [
            "--model.tokenizer",
            str(tokenizer),
            "--data.train_shards",
            str(out / "shards" / "train"),
            "--data.val_shards",
            str(out / "shards" / "valid"),
            "--trainer.max_steps",
            str(steps),
            "--trainer.val_check_interval",
            str(steps),
            *extra,
        ],
    )
    base_dir = out / "base-model"
    shutil.rmtree(base_dir, ignore_errors=True)
    shutil.copytree(full, base_dir)
    return base_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--n-general", type=int, default=DEFAULT_N_GENERAL)
    parser.add_argument("--n-medical", type=int, default=DEFAULT_N_MEDICAL)
    parser.add_argument("--base-steps", type=int, default=DEFAULT_BASE_STEPS)
    parser.add_argument("--tune-steps", type=int, default=DEFAULT_TUNE_STEPS)
    parser.add_argument("--delays", type=int, nargs="+", default=list(DELAYS_MS))
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    _stage(1, "test tokenizer", t0)
    tok = make_tokenizer(out)
    print(
        f"  {tok.path}: {tok.vocab_size} ids, [P]={tok.pad_id} [W]={tok.word_id}, "
        f"L={tok.n_left_pad_tokens}"
    )

    _stage(2, "synthetic corpus → shards (vrt-prep)", t0)
    glossary = out / "glossary.txt"
    glossary.write_text("\n".join(MEDICAL_TERMS) + "\n")
    general = prepare_general(out / "shards", "demo-general", tok.path, args.n_general, glossary)
    held_out = prepare_held_out_voice(out / "shards_held_out_voice", tok.path)
    # The medical sentences twice: with espeak-ng's exact word times (the reference, and the
    # evaluation set), and aligned from the audio by PocketSphinx as a team's recordings would
    # be (what the LoRA trains on). The second is scored against the first and can be inspected.
    exact = prepare(
        out / "shards_medical_exact", "demo-medical-exact", tok.path, 0, args.n_medical, 1, glossary
    )
    medical = prepare(
        out / "shards_medical", "demo-medical", tok.path, 0, args.n_medical, 1, glossary,
        aligner="pocketsphinx", reference=out / "shards_medical_exact",
    )  # fmt: skip
    for name, s in (
        ("general", general),
        ("general, held-out voice", held_out),
        ("medical, exact", exact),
        ("medical", medical),
    ):
        print(
            f"  {name}: {s['kept_samples']} samples kept, {s['rejected']} rejected, "
            f"{sum(s['hours_by_split'].values()) * 60:.1f} min"
        )
    print_alignment_check(out)

    _stage(3, f"base model from random init, {args.base_steps} steps (vrt-train)", t0)
    base_dir = train_base(out, tok.path, args.base_steps)

    _stage(4, f"LoRA on medical sentences, {args.tune_steps} steps (vrt-train)", t0)
    medical_index = read_index(out / "shards_medical")
    replay = replay_shards(out / "shards", "train", medical_index["splits"]["train"]["samples"])
    print(f"  replay: {len(replay)} general shards beside the medical ones")
    adapter = train(
        MEDICAL_RECIPE,
        out / "train_medical",
        [
            "--model.base_model",
            str(base_dir),
            "--data.train_shards",
            json.dumps([str(out / "shards_medical" / "train"), *replay]),
            "--data.val_shards",
            str(out / "shards_medical" / "valid"),
            "--trainer.max_steps",
            str(args.tune_steps),
            "--trainer.val_check_interval",
            str(args.tune_steps),
        ],
    )

    _stage(5, "evaluation, base vs fine-tuned (vrt-eval)", t0)
    eval_dir = out / "eval"
    evaluate(
        {"base": str(base_dir), "tuned": f"{base_dir}:{adapter}"},
        out / "shards_medical_exact",  # references with the true word ends
        args.delays,
        eval_dir,
        *("--general", str(out / "shards"), "--glossary", str(out / "glossary.txt")),
        *("--card", "--base_model", "vrt-finetune/demo-tiny-base"),
        *("--data_card", str(out / "shards_medical" / "README.md")),
        *("--recipe", str(MEDICAL_RECIPE)),
    )
    voice = evaluate({"base": str(base_dir)}, out / "shards_held_out_voice", args.delays,
                     out / "eval_held_out_voice")  # fmt: skip
    print(f"  base on the held-out voice ({HELD_OUT_VOICE}): WER {wer_line(voice['base'])}")

    _stage(6, "merged export: Hugging Face + Mistral formats (vrt-export)", t0)
    export(base_dir, adapter, out / "export")

    print(f"\ndone in {time.perf_counter() - t0:.0f} s. Outputs under {out}/:")
    for path, what in (
        ("shards/README.md", "dataset card (general)"),
        ("shards_medical/README.md", "dataset card (medical, aligned by PocketSphinx)"),
        ("shards_medical/score/score.md", "PocketSphinx word boundaries vs exact times"),
        ("inspect.html", "inspection page of the medical shards"),
        ("eval/README.md", "model card"),
        ("eval/metrics.md", "metrics table"),
        ("eval/wer_by_delay.png", "WER by delay"),
        ("export/hf", "merged, Hugging Face format"),
        ("export/mistral", "merged, Mistral format (vLLM)"),
    ):
        print(f"  {path:28s} {what}")
    print("\nheadline numbers:\n" + (eval_dir / "metrics.md").read_text()[:2000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
