"""The ``vrt-prep`` subcommands that read a prepared dataset: ``verify``, ``inspect``, ``score``,
``export``.

    vrt-prep verify DIR [--splits [train,valid]] [--workers 8]   # shards against index.json
    vrt-prep inspect DIR [--out page.html] [--per_split 200]     # a page to look at alignments
    vrt-prep score DIR --reference REF [--out DIR/score]         # word boundaries against REF
    vrt-prep export DIR --to lhotse --out OUT                    # a lhotse CutSet per split

Each is a thin layer over a library function (:func:`vrt_finetune.shard_verify.verify_dataset`,
:func:`data_prep.inspect_page.write_inspection_page`, :func:`data_prep.score.score_alignments`,
:func:`data_prep.lhotse_export.export_lhotse`),
so the same work is one call from Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from jsonargparse import ArgumentParser, Namespace

from vrt_finetune.config_parser import HelpFormatter


def _parser(name: str, description: str) -> ArgumentParser:
    parser = ArgumentParser(
        prog=f"vrt-prep {name}", description=description, formatter_class=HelpFormatter
    )
    parser.add_argument("dir", type=str, help="a dataset directory written by `vrt-prep run`")
    return parser


def add_dataset_commands(sub) -> None:  # jsonargparse's subcommands action
    """Register ``verify``, ``inspect``, ``score`` and ``export`` on ``vrt-prep``'s
    subcommands."""
    verify = _parser("verify", "Check every shard against index.json: size, sha256, samples.")
    verify.add_argument(
        "--splits", type=list[str] | None, default=None, help="only these splits (default: all)"
    )
    verify.add_argument("--workers", type=int, default=4, help="shards read in parallel")
    sub.add_subcommand("verify", verify, help="check shards against their index.json")

    inspect = _parser("inspect", "Write a static page to listen to samples and see word spans.")
    inspect.add_argument("--out", type=str | None, default=None, help="default: DIR/inspect.html")
    inspect.add_argument("--per_split", type=int, default=200, help="samples listed per split")
    inspect.add_argument("--seed", type=int, default=0, help="the same seed lists the same samples")
    inspect.add_argument(
        "--max_audio_seconds",
        type=float,
        default=600.0,
        help="audio embedded in all (~4.7 kB/s); later samples show words and targets only",
    )
    sub.add_subcommand("inspect", inspect, help="an HTML page of samples, word spans, targets")

    score = _parser("score", "Compare word boundaries with reference times.")
    score.add_argument(
        "--reference",
        type=str,
        required=True,
        help="another dataset directory, a CTM, a whisperX JSON {key: result}, or a folder of "
        "KEY.TextGrid / KEY.json / KEY.ctm",
    )
    score.add_argument("--out", type=str | None, default=None, help="default: DIR/score")
    sub.add_subcommand("score", score, help="boundary accuracy against reference word times")

    export = _parser("export", "Write the dataset in another toolkit's format.")
    export.add_argument(
        "--to",
        type=Literal["lhotse"],
        required=True,
        help="lhotse: OUT/cuts_{split}.jsonl.gz (CutSet with word alignments) and the FLACs",
    )
    export.add_argument("--out", type=str, required=True, help="the export directory")
    sub.add_subcommand("export", export, help="the dataset as a lhotse CutSet")


def run_dataset_command(name: str, args: Namespace) -> int:
    """Run one of the subcommands above; returns the exit status."""
    root = Path(args.dir)
    if name == "verify":
        from vrt_finetune.shard_verify import verify_dataset

        checks = verify_dataset(root, args.splits, args.workers)
        bad = [c for c in checks if not c.ok]
        for c in bad:
            print(f"BAD  {c.name}: {c.problem}\n     re-create: {c.fix(root)}")
        print(f"{len(checks)} shards checked against {root / 'index.json'}: {len(bad)} bad")
        return 1 if bad else 0
    if name == "inspect":
        from data_prep.inspect_page import write_inspection_page

        page = write_inspection_page(
            root, args.out, args.per_split, args.seed, args.max_audio_seconds
        )
        print(f"wrote {page} (open it in a browser; it needs no server)")
        return 0
    if name == "export":
        from data_prep.lhotse_export import export_lhotse

        for split, path in export_lhotse(root, args.out).items():
            print(f"{split}: {path}")
        return 0
    from data_prep.score import score_alignments, write_report

    paths = write_report(score_alignments(root, args.reference), args.out or root / "score")
    print(paths["markdown"].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
