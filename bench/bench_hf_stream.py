"""A streamed Parquet source vs a JSONL manifest of the same rows (benchmark, run by hand).

    .venv/bin/python bench/bench_hf_stream.py [--rows 1000] [--repeats 2]

The same rows (speech-band noise of 1-2 s, 16-bit WAV, with word times) are written twice: as
WAV files with a JSONL manifest (a whisperX JSON of word times per row) and as Parquet files
written by ``datasets`` (audio bytes embedded, a ``words`` column). Both go through the whole
``vrt-prep`` pipeline with the given-times aligner and one worker, so the source is what
differs. Reported: rows per second of each (best of ``--repeats``) and their ratio, and the
sources alone (rows → items, no decoding), which is where the difference comes from.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import datasets
import soundfile as sf

from data_prep.align.testing import noise_audio
from data_prep.cli import run
from data_prep.config import load_config
from data_prep.hf_source import HfUnits
from data_prep.sources import read_manifest
from vrt_finetune.testing import make_test_tokenizer

VOCAB = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]


def write_corpus(root: Path, n_rows: int, n_files: int = 4) -> tuple[Path, Path]:
    """``(manifest.jsonl, parquet directory)`` holding the same ``n_rows`` rows."""
    (root / "wav").mkdir(parents=True)
    (root / "align").mkdir()
    (root / "pq").mkdir()
    manifest, rows = [], []
    for i in range(n_rows):
        seconds = 1.0 + (i % 5) * 0.25
        buf = io.BytesIO()
        sf.write(buf, noise_audio(seconds, seed=i), 16000, format="WAV", subtype="PCM_16")
        (root / "wav" / f"u{i}.wav").write_bytes(buf.getvalue())
        words, t = [], 0.2
        while t + 0.45 < seconds:
            words.append({"word": VOCAB[(i + len(words)) % 9], "start": t, "end": t + 0.35})
            t += 0.5
        text = " ".join(w["word"] for w in words)
        (root / "align" / f"u{i}.json").write_text(json.dumps({"segments": [{"words": words}]}))
        manifest.append({"audio": f"wav/u{i}.wav", "text": text, "alignment": f"align/u{i}.json"})
        rows.append({"audio": {"bytes": buf.getvalue(), "path": f"u{i}.wav"}} | {"text": text})
        rows[-1]["words"] = words
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in manifest))
    ds = datasets.Dataset.from_list(rows).cast_column("audio", datasets.Audio())
    for k in range(n_files):
        part = ds.shard(n_files, k, contiguous=True)
        part.to_parquet(str(root / "pq" / f"train-{k:05d}-of-{n_files:05d}.parquet"))
    return root / "manifest.jsonl", root / "pq"


def overrides(out: Path, tokenizer: Path, source: dict) -> list[str]:
    cfg = {
        "output": str(out),
        "tokenizer": str(tokenizer),
        "aligner.backend": "given",
        "workers": 1,
        "shards.items_per_unit": 64,
    } | source
    return [f"{k}={json.dumps(v)}" for k, v in cfg.items()]


def timed_run(args: list[str], n_rows: int) -> float:
    """Rows per second of one whole ``vrt-prep run``."""
    config = load_config(None, args)
    t0 = time.perf_counter()
    summary = run(config, progress=False)
    wall = time.perf_counter() - t0
    assert summary is not None and summary["kept_samples"] == n_rows, summary["rejects_by_reason"]
    return n_rows / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        tokenizer = make_test_tokenizer(tmp / "tok").path
        manifest, parquet = write_corpus(tmp / "corpus", args.rows)
        sources = {
            "JSONL manifest": {"source.kind": "manifest", "source.path": str(manifest)},
            "streamed Parquet": {
                "source.kind": "hf",
                "source.path": str(parquet),
                "source.streaming": True,
                "source.words_column": "words",
            },
        }
        rates: dict[str, float] = {}
        for r in range(args.repeats):
            for name, source in sources.items():
                rate = timed_run(
                    overrides(tmp / f"out-{name[:4]}-{r}", tokenizer, source), args.rows
                )
                rates[name] = max(rates.get(name, 0.0), rate)
        for name, rate in rates.items():
            print(f"{name:>16}: {rate:7.1f} rows/s through vrt-prep (given times, 1 worker)")
        ratio = rates["streamed Parquet"] / rates["JSONL manifest"]
        print(f"ratio streamed Parquet / manifest: {ratio:.2f}")

        t0 = time.perf_counter()
        n = sum(1 for _ in read_manifest(manifest))
        manifest_rate = n / (time.perf_counter() - t0)
        source = load_config(None, overrides(tmp / "x", tokenizer, sources["streamed Parquet"]))
        t0 = time.perf_counter()
        n = sum(len(make()) for _, make in HfUnits(source.source, 64))
        stream_rate = n / (time.perf_counter() - t0)
        print(
            f"sources alone (rows → items, no decoding): manifest {manifest_rate:.0f} rows/s, "
            f"streamed Parquet {stream_rate:.0f} rows/s"
        )


if __name__ == "__main__":
    main()
