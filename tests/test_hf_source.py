"""Hugging Face datasets as a vrt-prep source, read as streams through the real ``datasets``
code path: Parquet/Arrow/WebDataset/audiofolder files written here, ``streaming=True``.

The same rows give the manifest's shards; two ranks and a merge give one rank's shards; a
killed run resumes to byte-identical shards without re-reading finished units; bad rows are
counted rejects; a missing column names the columns that exist and the presets.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
import webdataset as wds

from data_prep import hf_source, unit_processor
from data_prep.align.testing import noise_audio
from data_prep.cli import main as prep_main
from data_prep.cli import run
from data_prep.column_presets import ColumnMap, resolve_columns
from data_prep.config import SourceConfig, load_config
from data_prep.errors import SourceError
from data_prep.hf_source import HfUnits, hf_items

ROWS = 10
VOCAB = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]


def utterance(i: int) -> tuple[np.ndarray, list[dict]]:
    """Noise with a syllable envelope and evenly spaced word times (the given-times aligner
    needs no speech)."""
    seconds = 1.0 + 0.25 * (i % 5)
    words, t = [], 0.2
    while t + 0.45 < seconds:
        word = VOCAB[(i + len(words)) % len(VOCAB)]
        words.append({"word": word, "start": round(t, 3), "end": round(t + 0.35, 3), "score": 1.0})
        t += 0.5
    return noise_audio(seconds, seed=i), words


def wav_bytes(audio: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def text_of(words: list[dict]) -> str:
    return " ".join(w["word"] for w in words)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The same rows as WAV files + a JSONL manifest (whisperX JSON word times), as two
    Parquet files, as a ``save_to_disk`` directory and as WebDataset/audiofolder files."""
    d = tmp_path_factory.mktemp("corpus")
    (d / "wav").mkdir()
    (d / "align").mkdir()
    manifest, rows = [], []
    for i in range(ROWS):
        audio, words = utterance(i)
        sf.write(d / "wav" / f"u{i}.wav", audio, 16000, subtype="PCM_16")
        (d / "align" / f"u{i}.json").write_text(json.dumps({"segments": [{"words": words}]}))
        manifest.append(
            {
                "audio": f"wav/u{i}.wav",
                "text": text_of(words),
                "speaker": f"s{i % 4}",
                "alignment": f"align/u{i}.json",
            }
        )
        rows.append(
            {
                "audio": {"bytes": (d / "wav" / f"u{i}.wav").read_bytes(), "path": f"u{i}.wav"},
                "text": text_of(words),
                "speaker": f"s{i % 4}",
                "words": words,
            }
        )
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in manifest))
    ds = datasets.Dataset.from_list(rows).cast_column("audio", datasets.Audio())
    (d / "pq").mkdir()
    ds.select(range(6)).to_parquet(str(d / "pq" / "train-00000-of-00002.parquet"))
    ds.select(range(6, ROWS)).to_parquet(str(d / "pq" / "train-00001-of-00002.parquet"))
    ds.save_to_disk(str(d / "saved"))
    return d


def config(out: Path, tokenizer, **overrides):
    base = {
        "name": "hf",
        "output": str(out),
        "tokenizer": str(tokenizer.path),
        "source.kind": "manifest",
        "aligner.backend": "given",
        "shards.items_per_unit": 3,
        "shards.max_samples": 2,
        "shards.valid_fraction": 0.2,
        "shards.test_fraction": 0.2,
    } | overrides
    return load_config(None, [f"{k}={json.dumps(v)}" for k, v in base.items()])


def hf_config(out: Path, tokenizer, path: Path | str, **overrides):
    source = {
        "source.kind": "hf",
        "source.path": str(path),
        "source.streaming": True,
        "source.speaker_column": "speaker",
        "source.words_column": "words",
    }
    return config(out, tokenizer, **(source | overrides))


def tree(out: Path) -> dict[str, bytes]:
    """Every shard and the index, by relative path."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.tar"))} | {
        "index.json": (out / "index.json").read_bytes()
    }


def samples(out: Path) -> dict[str, list[tuple[str, bytes, dict]]]:
    """Per shard, its samples: key, FLAC bytes and metadata without ``source`` (which names
    where each item came from, so it differs between sources of the same rows)."""
    index = json.loads((out / "index.json").read_text())
    got = {}
    for shard in index["shards"]:
        rows = []
        for s in wds.WebDataset(str(out / shard["name"]), shardshuffle=False):
            meta = json.loads(s["json"])
            meta.pop("source")
            rows.append((s["__key__"], s["flac"], meta))
        got[shard["name"]] = rows
    return got


@pytest.fixture(scope="module")
def streamed(corpus, tmp_path_factory, tokenizer) -> Path:
    out = tmp_path_factory.mktemp("streamed")
    summary = run(hf_config(out, tokenizer, corpus / "pq"), progress=False)
    assert summary is not None and summary["kept_samples"] == ROWS, summary["reject_examples"]
    return out


@pytest.mark.parametrize("kind", ["manifest", "save_to_disk", "arrow files"])
def test_streamed_parquet_gives_the_shards_of_the_same_rows(
    kind, corpus, streamed, tmp_path, tokenizer
) -> None:
    if kind == "manifest":
        cfg = config(tmp_path, tokenizer, **{"source.path": str(corpus / "manifest.jsonl")})
    elif kind == "save_to_disk":  # prepared, not streamed: the same units
        cfg = hf_config(tmp_path, tokenizer, corpus / "saved", **{"source.streaming": False})
    else:
        cfg = hf_config(tmp_path, tokenizer, corpus / "saved" / "*.arrow")
    summary = run(cfg, progress=False)
    assert summary is not None and summary["kept_samples"] == ROWS
    assert samples(tmp_path) == samples(streamed)
    assert len(samples(streamed)) > 3  # several units and splits, shards rolled over


def test_two_ranks_and_merge_give_one_ranks_shards(streamed, corpus, tmp_path, tokenizer) -> None:
    cfg = hf_config(tmp_path, tokenizer, corpus / "pq")
    assert run(cfg, rank=0, world_size=2, progress=False) is None
    # rank 0 ran units 0 and 2 of 0-3 (rows 0-2 and 6-8), and only those
    assert sorted(p.name for p in (tmp_path / "_units").glob("*.json")) == [
        "unit-00000.json",
        "unit-00002.json",
    ]
    assert run(cfg, rank=1, world_size=2, progress=False) is None
    assert prep_main(["merge", "--output", str(tmp_path)]) == 0
    assert tree(tmp_path) == tree(streamed)


def test_killed_stream_resumes_to_identical_shards_skipping_finished_units(
    streamed, corpus, tmp_path, tokenizer, monkeypatch
) -> None:
    real_write = unit_processor.UnitShardWriter.write
    calls = {"n": 0}

    def dying_write(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # in unit 1, after unit 0 finished
            raise KeyboardInterrupt("killed")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(unit_processor.UnitShardWriter, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        run(hf_config(tmp_path, tokenizer, corpus / "pq"), progress=False)
    finished = sorted(p.name for p in (tmp_path / "_units").glob("*.json"))
    assert finished == ["unit-00000.json"]
    monkeypatch.setattr(unit_processor.UnitShardWriter, "write", real_write)
    made = []
    real_row_items = hf_source.row_items

    def counting_row_items(row, index, *args):
        made.append(index)
        return real_row_items(row, index, *args)

    monkeypatch.setattr(hf_source, "row_items", counting_row_items)
    run(hf_config(tmp_path, tokenizer, corpus / "pq"), progress=False)
    assert made == list(range(3, ROWS))  # unit 0's rows never became items again
    assert tree(tmp_path) == tree(streamed)


def test_bad_rows_are_counted_rejects(corpus, tmp_path, tokenizer) -> None:
    good = (corpus / "wav" / "u0.wav").read_bytes()
    _, words = utterance(0)
    rows = [  # (audio cell, text, words, expected reason or None for kept)
        ({"bytes": good, "path": "a.wav"}, text_of(words), words, None),
        ({"bytes": np.random.default_rng(0).bytes(3000), "path": "b"}, "x", words, "unreadable"),
        ({"bytes": good[: len(good) // 2], "path": "c.wav"}, text_of(words), words, "truncated"),
        ({"bytes": good, "path": "d.wav"}, "", words, "empty_transcript"),
        ({"bytes": good, "path": "e.wav"}, None, words, "empty_transcript"),
        ({"bytes": None, "path": str(tmp_path / "gone.wav")}, "x", words, "missing_file"),
        (None, "x", words, "missing_file"),
        ({"bytes": good, "path": "h.wav"}, text_of(words), [{"word": "alpha"}], "bad_timestamps"),
    ]
    (tmp_path / "gone.wav").write_bytes(good)  # the dataset names a file, later deleted
    ds = datasets.Dataset.from_dict(
        {
            "audio": [r[0] for r in rows],
            "text": [r[1] for r in rows],
            "words": [r[2] for r in rows],
        }
    ).cast_column("audio", datasets.Audio())
    ds.to_parquet(str(tmp_path / "bad.parquet"))
    (tmp_path / "gone.wav").unlink()
    cfg = hf_config(
        tmp_path / "out",
        tokenizer,
        tmp_path / "bad.parquet",
        **{"source.speaker_column": None, "shards.valid_fraction": 0.0},
    )
    summary = run(cfg, progress=False)
    assert summary is not None
    assert summary["kept_samples"] == 1 and summary["items"] == len(rows)
    want: dict[str, int] = {}
    for *_, reason in rows:
        if reason:
            want[reason] = want.get(reason, 0) + 1
    assert summary["rejects_by_reason"] == want
    for e in summary["reject_examples"]:  # each names the dataset and the row
        row = int(e["key"].split("_")[0])
        assert e["reason"] == rows[row][3]
        assert f"bad.parquet[train][{row}]" in e["message"]


def test_long_recordings_with_segment_lists(corpus, tmp_path, tokenizer) -> None:
    """A long recording with whisperX-style segments: each segment is an item, a window of the
    recording, exactly as a manifest row with ``start``/``end`` and its word times."""
    pieces = [utterance(i) for i in range(4)]
    audio = np.concatenate([a for a, _ in pieces])
    sf.write(tmp_path / "long.wav", audio, 16000, subtype="PCM_16")
    segments, manifest, at = [], [], 0.0
    for j, (a, words) in enumerate(pieces):
        shifted = [w | {"start": w["start"] + at, "end": w["end"] + at} for w in words]
        end = at + len(a) / 16000
        segments.append({"start": at, "end": end, "text": text_of(words), "words": shifted})
        (tmp_path / f"seg{j}.json").write_text(json.dumps({"segments": [{"words": words}]}))
        manifest.append(
            {"audio": "long.wav", "text": text_of(words), "start": at, "end": end}
            | {"alignment": f"seg{j}.json"}
        )
        at = end
    segments.append({"start": 3.0, "end": 2.0, "text": "alpha", "words": []})
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in manifest))
    ds = datasets.Dataset.from_dict(
        {
            "audio": [{"bytes": (tmp_path / "long.wav").read_bytes(), "path": "long.wav"}],
            "text": [""],
            "segments": [segments],
        }
    ).cast_column("audio", datasets.Audio())
    ds.to_parquet(str(tmp_path / "long.parquet"))
    flat = {"shards.valid_fraction": 0.0, "shards.test_fraction": 0.0}
    hf = hf_config(
        tmp_path / "hf",
        tokenizer,
        tmp_path / "long.parquet",
        **{"source.preset": "long_audio", "source.speaker_column": None}
        | {"source.words_column": None}
        | flat,
    )
    summary = run(hf, progress=False)
    assert summary["kept_samples"] == 4 and summary["rejects_by_reason"] == {"bad_segment": 1}
    man = config(tmp_path / "man", tokenizer, **{"source.path": str(tmp_path / "m.jsonl")} | flat)
    assert run(man, progress=False)["kept_samples"] == 4

    def flac_and_words(out: Path) -> list[tuple[bytes, list]]:
        rows = [s for shard in samples(out).values() for s in shard]
        return [(flac, meta["words"]) for _, flac, meta in rows]

    assert flac_and_words(tmp_path / "hf") == flac_and_words(tmp_path / "man")


def test_a_missing_column_names_the_columns_and_the_presets(corpus, capsys, tmp_path) -> None:
    source = SourceConfig(kind="hf", path=str(corpus / "pq"), streaming=True, preset="fleurs")
    with pytest.raises(SourceError) as err:
        HfUnits(source, 4)
    msg = str(err.value)
    assert "'raw_transcription'" in msg and "['audio', 'text', 'speaker', 'words']" in msg
    assert "source.preset" in msg and "common_voice (" in msg and "text_column" in msg
    argv = ["run", f"--output={tmp_path}", "--tokenizer=x", "--source.kind=hf"]
    argv += [f"--source.path={corpus / 'pq'}", "--source.text_column=sentence"]
    assert prep_main(argv) == 1
    assert "no column 'sentence'" in capsys.readouterr().err


def test_presets_and_overrides(tmp_path) -> None:
    assert resolve_columns("common_voice") == ColumnMap(
        text="sentence", speaker="client_id", language="locale"
    )
    assert resolve_columns("librispeech", speaker="").speaker is None
    assert resolve_columns(None, text="transcript").text == "transcript"
    with pytest.raises(ValueError, match="presets: common_voice, fleurs"):
        resolve_columns("cv")
    audio, _ = utterance(1)
    cv = datasets.Dataset.from_dict(
        {
            "client_id": ["c1", "c2"],
            "path": ["cv_sw_1.mp3", "cv_sw_2.mp3"],
            "audio": [{"bytes": wav_bytes(audio), "path": "cv_sw_1.wav"}] * 2,
            "sentence": ["Habari ya asubuhi.", "Asante sana."],
            "up_votes": [2, 3],
            "locale": ["sw", "sw"],
        }
    ).cast_column("audio", datasets.Audio())
    cv.to_parquet(str(tmp_path / "cv.parquet"))
    source = SourceConfig(
        kind="hf", path=str(tmp_path / "cv.parquet"), streaming=True, preset="common_voice"
    )
    items = list(hf_items(source))
    assert [(i.key, i.text, i.speaker, i.language) for i in items] == [
        ("00000000_cv_sw_1", "Habari ya asubuhi.", "c1", "sw"),
        ("00000001_cv_sw_1", "Asante sana.", "c2", "sw"),
    ]
    source.speaker_column, source.text_column = "", "path"
    items = list(hf_items(source))
    assert [(i.text, i.speaker) for i in items] == [("cv_sw_1.mp3", None), ("cv_sw_2.mp3", None)]


def test_webdataset_and_audiofolder_files(tmp_path) -> None:
    from data_prep.audio_io import load_audio

    audios = [utterance(i)[0] for i in range(3)]
    with tarfile.open(tmp_path / "shard-000.tar", "w") as tar:
        for i, a in enumerate(audios):
            for name, payload in ((f"k{i}.wav", wav_bytes(a)), (f"k{i}.txt", f"row {i}".encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, a in enumerate(audios):
        sf.write(folder / f"a{i}.flac", a, 16000)
    (folder / "metadata.csv").write_text(
        "file_name,transcription\n" + "".join(f"a{i}.flac,row {i}\n" for i in range(3))
    )
    for path, audio_column, text_column, names in (
        (tmp_path / "*.tar", "wav", "txt", ["k0", "k1", "k2"]),
        (folder, "audio", "transcription", ["a0", "a1", "a2"]),
    ):
        source = SourceConfig(
            kind="hf",
            path=str(path),
            streaming=True,
            audio_column=audio_column,
            text_column=text_column,
        )
        items = list(hf_items(source))
        assert [i.key for i in items] == [f"0000000{n}_{k}" for n, k in enumerate(names)]
        assert [i.text for i in items] == ["row 0", "row 1", "row 2"]
        for item, a in zip(items, audios, strict=True):
            got = load_audio(item.audio)  # type: ignore[arg-type]
            assert len(got) == len(a) and np.abs(got - a).max() < 1e-4
