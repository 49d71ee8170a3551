"""Every kind of bad input from the data issue: handled, or skipped with its reason counted in
the summary and the card; nothing crashes the corpus and nothing is lost silently."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.align.testing import noise_audio, save_random_wav2vec2_ctc
from data_prep.cli import run
from data_prep.config import load_config
from data_prep.synth import synthesize

GOOD = "The heart rate is normal."


def _cfg(out: Path, tokenizer, manifest: Path, **extra):
    base = {
        "name": "bad",
        "output": str(out),
        "tokenizer": str(tokenizer.path),
        "source.kind": "manifest",
        "source.path": str(manifest),
        "shards.items_per_unit": 4,
        "shards.valid_fraction": 0.0,
        "shards.test_fraction": 0.0,
    } | extra
    return load_config(None, [f"{k}={json.dumps(v)}" for k, v in base.items()])


def encode_with_ffmpeg(audio: np.ndarray, path: Path, *args: str) -> None:
    """(frames, channels) float32 at 16 kHz → ``path`` through ffmpeg (mp3, 44.1 kHz flac …)."""
    cmd = [
        "ffmpeg",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "f32le",
        "-ar",
        "16000",
        "-ac",
        str(audio.shape[1]),
        "-i",
        "-",
        *args,
        str(path),
    ]
    subprocess.run(cmd, input=audio.astype(np.float32).tobytes(), check=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str | None]]:
    """A manifest of bad (and some awkward but good) rows; value: expected reject reason."""
    d = tmp_path_factory.mktemp("corpus")
    speech = synthesize(GOOD).audio
    sf.write(d / "good.wav", speech, 16000)
    (d / "unreadable.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    sf.write(d / "full.wav", speech, 16000, subtype="PCM_16")
    raw = (d / "full.wav").read_bytes()
    (d / "truncated.wav").write_bytes(raw[: len(raw) // 2])
    (d / "empty.wav").write_bytes(b"")
    sf.write(d / "silence.wav", np.zeros(32000, np.float32), 16000)
    nan = speech.copy()
    nan[1000:1010] = np.nan
    sf.write(d / "nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(d / "clipped.wav", np.clip(speech * 50, -1, 1), 16000)
    sf.write(d / "eight_bit.wav", speech, 16000, subtype="PCM_U8")
    stereo = np.stack([speech, speech * 0.5], axis=1)
    encode_with_ffmpeg(stereo, d / "stereo44k.flac", "-ar", "44100")
    encode_with_ffmpeg(speech[:, None], d / "speech.mp3")
    sf.write(d / "noise.wav", noise_audio(3.0), 16000)
    rows = [  # (audio, text, expected reason or None for kept)
        ("good.wav", GOOD, None),
        ("unreadable.wav", GOOD, "unreadable"),
        ("truncated.wav", GOOD, "truncated"),
        ("empty.wav", GOOD, "empty"),
        ("silence.wav", GOOD, "silent"),
        ("nan.wav", GOOD, "non_finite"),
        ("clipped.wav", GOOD, "clipped"),
        ("eight_bit.wav", GOOD, None),
        ("stereo44k.flac", GOOD, None),
        ("speech.mp3", GOOD, None),
        ("good.wav", "", "empty_transcript"),
        ("good.wav", "   \t ", "empty_transcript"),
        ("good.wav", "Take 42 mg & call Dr. Lee at 5 pm 🙂", None),
        ("noise.wav", "東京 は 大きい", None),
        ("noise.wav", "שלום עולם", None),
        ("good.wav", " ".join(["word"] * 60), "mismatch"),  # does not match its audio
        ("missing.wav", GOOD, "missing_file"),
    ]
    manifest = d / "manifest.jsonl"
    manifest.write_text(
        "\n".join(
            json.dumps({"audio": a, "text": t, "id": f"r{i}"}) for i, (a, t, _) in enumerate(rows)
        )
        + "\nnot json\n"
    )
    expected = {f"r{i}": reason for i, (_, _, reason) in enumerate(rows)}
    expected["bad row"] = "bad_manifest_row"
    return manifest, expected


@pytest.fixture(scope="module")
def aligner_dir(tmp_path_factory) -> Path:
    return save_random_wav2vec2_ctc(tmp_path_factory.mktemp("w2v") / "tiny")


def test_every_bad_input_is_counted(corpus, aligner_dir, tmp_path, tokenizer) -> None:
    manifest, expected = corpus
    config = _cfg(
        tmp_path,
        tokenizer,
        manifest,
        **{
            "aligner.backend": "whisperx",
            "aligner.model": str(aligner_dir),
            "filters.max_flagged_fraction": 1.0,
        },
    )
    summary = run(config, progress=False)
    assert summary is not None
    # nothing lost: every row is kept or rejected with a reason
    assert summary["kept_samples"] + summary["rejected"] == len(expected)
    # a transcript that does not match its audio fails alignment or the speaking-rate filter
    mismatch_reasons = {"backtrack_failed", "too_fast", "unalignable"}
    got = dict(summary["rejects_by_reason"])
    mismatch = [r for r in got if r in mismatch_reasons]
    assert len(mismatch) == 1 and got.pop(mismatch[0]) == 1
    want: dict[str, int] = {}
    for reason in expected.values():
        if reason not in (None, "mismatch"):
            want[reason] = want.get(reason, 0) + 1
    assert got == want
    by_key = {e["key"].split("_", 1)[-1]: e for e in summary["reject_examples"]}
    for rid, reason in expected.items():
        if reason is not None and rid.startswith("r"):
            allowed = mismatch_reasons if reason == "mismatch" else {reason}
            assert by_key[rid]["reason"] in allowed
            assert "manifest.jsonl" in by_key[rid]["message"]  # names the file and the row
    card = (tmp_path / "README.md").read_text()
    for reason in [*want, mismatch[0]]:
        assert f"| {reason} |" in card


def test_folder_source_bad_transcripts(tmp_path, tokenizer) -> None:
    src = tmp_path / "folder" / "spk1"
    src.mkdir(parents=True)
    speech = synthesize(GOOD)
    for name in ("ok", "latin1", "blank", "notext"):
        sf.write(src / f"{name}.wav", speech.audio, 16000)
    (src / "ok.txt").write_text(GOOD)
    (src / "latin1.txt").write_bytes("Le coeur bat très vite.".encode("latin-1"))
    (src / "blank.txt").write_text("  \n ")
    # given word times beside the audio (whisperX JSON) instead of an aligner
    words = [{"word": w.word, "start": w.start, "end": w.end, "score": 1.0} for w in speech.words]
    (src / "ok.json").write_text(json.dumps({"segments": [{"words": words}]}))
    config = load_config(
        None,
        [
            f"{k}={json.dumps(v)}"
            for k, v in {
                "output": str(tmp_path / "out"),
                "tokenizer": str(tokenizer.path),
                "source.kind": "folder",
                "source.path": str(tmp_path / "folder"),
                "aligner.backend": "given",
                "shards.valid_fraction": 0.0,
                "shards.test_fraction": 0.0,
            }.items()
        ],
    )
    summary = run(config, progress=False)
    assert summary["kept_samples"] == 1
    assert summary["rejects_by_reason"] == {"empty": 1, "missing_transcript": 1, "not_utf8": 1}
    msg = next(e["message"] for e in summary["reject_examples"] if e["reason"] == "not_utf8")
    assert "latin1.txt" in msg


def test_one_hour_recording_is_split_with_bounded_memory(tmp_path, tokenizer) -> None:
    """A 1-hour file with word times (CTM) becomes ≤ 30 s segments cut between words."""
    seconds = 3600
    audio = noise_audio(seconds, seed=1)
    sf.write(tmp_path / "hour.wav", audio, 16000, subtype="PCM_16")
    del audio
    words, ctm = [], []
    t = 0.3
    while t + 0.5 < seconds:
        w = f"w{len(words) % 50}"
        words.append(w)
        ctm.append(f"hour 1 {t:.2f} 0.40 {w}")
        t += 0.55 + (1.2 if len(words) % 17 == 0 else 0.0)
    (tmp_path / "hour.ctm").write_text("\n".join(ctm) + "\n")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps(
            {"audio": "hour.wav", "text": " ".join(words), "id": "hour", "alignment": "hour.ctm"}
        )
        + "\n"
    )
    # a fresh process, so the peak is this job's alone. NOTE: its VmHWM, not ru_maxrss, which
    # Linux carries over from the (large) forked test process across exec.
    code = (
        "import re, sys; from data_prep.cli import main; rc = main(sys.argv[1:]); "
        "status = open('/proc/self/status').read(); "
        "print('PEAK_KB', re.search(r'VmHWM:\\s+(\\d+)', status).group(1)); sys.exit(rc)"
    )
    overrides = {
        "output": tmp_path / "out",
        "tokenizer": tokenizer.path,
        "source.kind": "manifest",
        "source.path": manifest,
        "aligner.backend": "given",
        "shards.valid_fraction": 0.0,
        "shards.test_fraction": 0.0,
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "run",
            "--progress=false",
            *(f"--{k}={v}" for k, v in overrides.items()),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    peak_kb = int(re.search(r"PEAK_KB (\d+)", proc.stdout).group(1))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["rejected"] == 0
    assert summary["kept_samples"] >= seconds / 30
    assert summary["hours_by_split"]["train"] == pytest.approx(1.0, abs=0.01)
    assert peak_kb < 3 * 2**20, f"peak RSS {peak_kb / 2**20:.2f} GB (target < 3 GB)"
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    total_words = 0
    for shard in index["shards"]:
        import webdataset as wds

        for s in wds.WebDataset(str(tmp_path / "out" / shard["name"]), shardshuffle=False):
            meta = json.loads(s["json"])
            assert meta["duration"] <= 30.0 + 1e-6
            total_words += len(meta["words"])
    assert total_words == len(words)


@pytest.mark.parametrize("vad", [True, False])
def test_untranscribed_speech_is_cut_out_with_vad(tmp_path, tokenizer, vad: bool) -> None:
    """Speech between transcribed sentences that nobody wrote down: silero-vad finds it and the
    stretch is left out, so no sample teaches the model to stay silent over speech."""
    a, x, b = (
        synthesize(t)
        for t in (
            "The heart rate is normal.",
            "Nobody wrote these extra words down at all.",
            "Please call the nurse.",
        )
    )
    audio = np.concatenate([a.audio, x.audio, b.audio])
    shift = (len(a.audio) + len(x.audio)) / 16000
    words = [*a.words, *(type(w)(w.word, w.start + shift, w.end + shift) for w in b.words)]
    sf.write(tmp_path / "u.wav", audio, 16000)
    (tmp_path / "u.ctm").write_text(
        "".join(f"u 1 {w.start:.3f} {w.end - w.start:.3f} {w.word}\n" for w in words)
    )
    (tmp_path / "m.jsonl").write_text(
        json.dumps(
            {
                "audio": "u.wav",
                "id": "u",
                "alignment": "u.ctm",
                "text": "The heart rate is normal. Please call the nurse.",
            }
        )
        + "\n"
    )
    summary = run(
        _cfg(
            tmp_path / "out",
            tokenizer,
            tmp_path / "m.jsonl",
            **{
                "aligner.backend": "given",
                "filters.vad": vad,
                "filters.max_words_per_second": 20.0,
            },
        ),
        progress=False,
    )
    assert summary["rejected"] == 0
    assert summary["kept_samples"] == (2 if vad else 1)
    kept = summary["hours_by_split"]["train"] * 3600
    if vad:  # the untranscribed sentence is gone, the two transcribed ones stay
        assert kept < (len(audio) - len(x.audio)) / 16000 + 0.5
    else:
        assert kept == pytest.approx(len(audio) / 16000, abs=0.01)


def test_mms_backend_through_the_pipeline(corpus, aligner_dir, tmp_path, tokenizer) -> None:
    """The multilingual backend (a local CTC model directory here) plugs into vrt-prep too."""
    manifest, _ = corpus
    rows = [json.loads(line) for line in manifest.read_text().splitlines()[:1]]
    rows[0]["audio"] = str(manifest.parent / rows[0]["audio"])
    small = tmp_path / "m.jsonl"
    small.write_text(json.dumps(rows[0]) + "\n")
    summary = run(
        _cfg(
            tmp_path / "out",
            tokenizer,
            small,
            **{
                "aligner.backend": "mms",
                "aligner.model": str(aligner_dir),
                "filters.max_flagged_fraction": 1.0,
            },
        ),
        progress=False,
    )
    assert summary["kept_samples"] + summary["rejected"] == 1
    assert summary["kept_samples"] == 1, summary["reject_examples"]
