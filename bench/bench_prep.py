"""Data-preparation benchmarks, run by hand (not a test).

    .venv/bin/python bench/bench_prep.py [--minutes 10]

1. Shard writing: FLAC encoding + JSON + tar of ready samples, one process, as audio seconds per
   wall second (target: >= 300x real time per core).
2. Whole pipeline on a manifest of WAV files with CTM word times (load, check, normalise, map,
   targets, FLAC, shards), one worker: real-time factor.
3. Peak memory of one 1-hour recording through the pipeline, in a fresh process (target < 3 GB).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.align.testing import noise_audio
from data_prep.shards import UnitShardWriter
from vrt_finetune import constants as C
from vrt_finetune.shard_format import SampleWord, ShardSample, encode_flac
from vrt_finetune.targets import build_targets
from vrt_finetune.testing import make_test_tokenizer


def fake_words(seconds: float, every: float = 0.55) -> tuple[list[str], list[float], list[float]]:
    words, starts, ends = [], [], []
    t = 0.3
    while t + 0.5 < seconds:
        words.append(f"word{len(words) % 50}")
        starts.append(t)
        ends.append(t + 0.4)
        t += every
    return words, starts, ends


def bench_shard_writing(tmp: Path, minutes: float, tokenizer) -> float:
    ids = tokenizer.ids
    utts = []
    rng = np.random.default_rng(0)
    total = 0.0
    while total < minutes * 60:
        sec = float(rng.uniform(3, 15))
        audio = noise_audio(sec, seed=len(utts))
        words, starts, ends = fake_words(sec)
        targets = build_targets(words, ends, len(audio), tokenizer.encode, ids)
        sample = ShardSample(
            key=f"{len(utts):08d}",
            text=" ".join(words),
            duration=sec,
            targets=targets,
            words=tuple(
                SampleWord(w, s, e, 1.0) for w, s, e in zip(words, starts, ends, strict=True)
            ),
        )
        utts.append((audio, sample, sec))
        total += sec
    writer = UnitShardWriter(tmp / "shards", "train", 0, max_samples=500, max_bytes=2**30)
    t0 = time.perf_counter()
    for audio, sample, _ in utts:
        writer.write(sample, encode_flac(audio))
    writer.close()
    wall = time.perf_counter() - t0
    rtf = total / wall
    print(
        f"shard writing: {total / 60:.1f} min of audio in {wall:.2f} s = {rtf:.0f}x real time "
        f"(target 300x; ratio {rtf / 300:.2f})"
    )
    return rtf


def write_corpus(tmp: Path, minutes: float) -> Path:
    corpus = tmp / "corpus"
    corpus.mkdir()
    rows, ctm, total, i = [], [], 0.0, 0
    while total < minutes * 60:
        sec = 3 + (i * 7) % 12
        sf.write(corpus / f"u{i}.wav", noise_audio(sec, seed=i), C.SAMPLE_RATE, subtype="PCM_16")
        words, starts, ends = fake_words(sec)
        ctm += [
            f"u{i} 1 {s:.2f} {e - s:.2f} {w}" for w, s, e in zip(words, starts, ends, strict=True)
        ]
        rows.append(
            {"audio": f"u{i}.wav", "text": " ".join(words), "id": f"u{i}", "alignment": "all.ctm"}
        )
        total += sec
        i += 1
    (corpus / "all.ctm").write_text("\n".join(ctm) + "\n")
    (corpus / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return corpus / "manifest.jsonl"


def run_prep(manifest: Path, out: Path, tokenizer_path: Path) -> float:
    from data_prep.cli import run
    from data_prep.config import load_config

    cfg = {
        "output": str(out),
        "tokenizer": str(tokenizer_path),
        "source.kind": "manifest",
        "source.path": str(manifest),
        "aligner.backend": "given",
        "workers": 1,
    }
    config = load_config(None, [f"{k}={json.dumps(v)}" for k, v in cfg.items()])
    t0 = time.perf_counter()
    summary = run(config, progress=False)
    wall = time.perf_counter() - t0
    assert summary is not None and summary["rejected"] == 0, summary
    return wall


def bench_hour_memory(tmp: Path, tokenizer_path: Path) -> None:
    hour = tmp / "hour"
    hour.mkdir()
    sf.write(hour / "hour.wav", noise_audio(3600, seed=1), C.SAMPLE_RATE, subtype="PCM_16")
    words, starts, ends = fake_words(3600)
    (hour / "hour.ctm").write_text(
        "".join(
            f"hour 1 {s:.2f} {e - s:.2f} {w}\n" for w, s, e in zip(words, starts, ends, strict=True)
        )
    )
    (hour / "m.jsonl").write_text(
        json.dumps(
            {"audio": "hour.wav", "text": " ".join(words), "id": "hour", "alignment": "hour.ctm"}
        )
        + "\n"
    )
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_prep as b; "
        f"from pathlib import Path; b.run_prep(Path({str(hour / 'm.jsonl')!r}), "
        f"Path({str(hour / 'out')!r}), Path({str(tokenizer_path)!r})); "
        "import re; print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])"
    )
    t0 = time.perf_counter()
    # NOTE: the child reports its own VmHWM; ru_maxrss of children is carried over from the
    # forked parent across exec, so it would include this process's memory.
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    peak_gb = int(done.stdout.split()[-1]) / 2**20
    print(
        f"1-hour recording: {time.perf_counter() - t0:.1f} s wall, peak RSS {peak_gb:.2f} GB "
        f"(target < 3 GB; ratio {peak_gb / 3:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        tokenizer = make_test_tokenizer(tmp / "tok")
        bench_shard_writing(tmp, args.minutes, tokenizer)
        manifest = write_corpus(tmp, args.minutes)
        wall = run_prep(manifest, tmp / "out", tokenizer.path)
        print(
            f"whole pipeline (given times, 1 worker): {args.minutes:.1f} min in {wall:.1f} s = "
            f"{args.minutes * 60 / wall:.0f}x real time"
        )
        bench_hour_memory(tmp, tokenizer.path)


if __name__ == "__main__":
    main()
