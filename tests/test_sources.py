"""Input readers: JSONL/CSV manifests, folders, saved Hugging Face datasets."""

import json

import datasets
import numpy as np
import pytest
import soundfile as sf

from data_prep import audio_io
from data_prep.errors import SourceError
from data_prep.sources import read_folder, read_hf_dataset, read_manifest, safe_key


def test_safe_keys_are_sortable_and_dot_free() -> None:
    assert safe_key(3, "a.b c/d") == "00000003_a_b_c_d"
    assert safe_key(12) == "00000012"


def test_csv_manifest_with_offsets(tmp_path) -> None:
    sf.write(tmp_path / "long.wav", np.zeros(16000 * 4, np.float32), 16000)
    (tmp_path / "m.csv").write_text(
        "audio,text,speaker,start,end,language\n"
        "long.wav,first part,s1,0.5,1.5,\n"
        "long.wav,second part,s2,2,3.25,fr\n"
    )
    items = list(read_manifest(tmp_path / "m.csv"))
    assert [(i.start, i.end, i.speaker, i.language) for i in items] == [
        (0.5, 1.5, "s1", "en"),
        (2.0, 3.25, "s2", "fr"),
    ]
    assert len(audio_io.load_audio(items[1].audio, items[1].start, items[1].end)) == 20000


def test_jsonl_manifest_rows_with_problems(tmp_path) -> None:
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"text": "no audio"})
        + "\n{broken\n"
        + json.dumps({"audio": "nope.wav", "text": "x"})
        + '\n["a list"]\n'
    )
    items = list(read_manifest(tmp_path / "m.jsonl"))
    errors = [i.error[0] for i in items]
    assert errors == ["bad_manifest_row", "bad_manifest_row", "missing_file", "bad_manifest_row"]
    assert "line 4 is a JSON list, not an object" in items[3].error[1]


def test_unreadable_manifest_is_a_source_error(tmp_path) -> None:
    (tmp_path / "m.jsonl").write_bytes(b"\xff\xfe not utf-8\n")
    with pytest.raises(SourceError, match=r"m\.jsonl: cannot read the manifest"):
        list(read_manifest(tmp_path / "m.jsonl"))
    with pytest.raises(SourceError, match="no such folder"):
        list(read_folder(tmp_path / "absent"))


def test_folder_speakers_from_subdirectories(tmp_path) -> None:
    for spk in ("alice", "bob"):
        (tmp_path / spk).mkdir()
        sf.write(tmp_path / spk / "u1.flac", np.zeros(1600, np.float32), 16000)
        (tmp_path / spk / "u1.txt").write_text(f"hello {spk}")
    items = list(read_folder(tmp_path))
    assert [(i.speaker, i.text) for i in items] == [("alice", "hello alice"), ("bob", "hello bob")]


def test_saved_hf_dataset(tmp_path) -> None:
    paths = []
    for i in range(3):
        p = tmp_path / f"a{i}.wav"
        sf.write(p, np.full(8000, 0.1 * (i + 1), np.float32), 8000)
        paths.append(str(p))
    ds = datasets.Dataset.from_dict(
        {"audio": paths, "sentence": ["one", "two", "three"], "client": ["x", "y", "x"]}
    ).cast_column("audio", datasets.Audio())
    ds.save_to_disk(str(tmp_path / "ds"))
    items = list(
        read_hf_dataset(
            str(tmp_path / "ds"),
            text_column="sentence",
            speaker_column="client",
            default_language="sw",
        )
    )
    assert [(i.text, i.speaker, i.language) for i in items] == [
        ("one", "x", "sw"),
        ("two", "y", "sw"),
        ("three", "x", "sw"),
    ]
    audio = audio_io.load_audio(items[2].audio)
    assert len(audio) == 16000 and abs(float(audio[8000]) - 0.3) < 1e-3


def test_inline_alignment_objects(tmp_path) -> None:
    """A JSONL row's ``alignment`` may hold the times themselves: read like the file it could
    name; a shape it cannot read is a counted ``bad_timestamps`` reject naming the row."""
    sf.write(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    words = [
        {"word": "hello", "start": 0.1, "end": 0.4},
        {"word": "there", "start": 0.5, "end": 0.9},
    ]
    whisperx = {"segments": [{"start": 0.1, "end": 0.9, "text": "hello there", "words": words}]}
    (tmp_path / "a.json").write_text(json.dumps(whisperx))
    alignments = [
        "a.json",
        whisperx,
        {"word_segments": words},
        whisperx["segments"][0],  # one whisperX segment
        words,
        {"tokens": [1, 2]},
        [{"word": "hello"}],
        5,
    ]
    rows = [{"audio": "a.wav", "text": "hello there", "alignment": a} for a in alignments]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = list(read_manifest(tmp_path / "m.jsonl"))
    from_file = items[0].words
    assert from_file is not None and [w.word for w in from_file] == ["hello", "there"]
    for item in items[1:5]:
        assert item.error is None
        assert [(w.word, w.start, w.end) for w in item.words] == [
            (w.word, w.start, w.end) for w in from_file
        ]
    for n, item in enumerate(items[5:], 6):
        assert item.words is None and item.error[0] == "bad_timestamps"
        assert item.error[1].startswith(f"{tmp_path / 'm.jsonl'}:{n}: cannot read the inline")
