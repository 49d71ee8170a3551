"""``source.kind: lhotse``: a CutSet and a Shar directory written with lhotse's own writers give
the shards of the equivalent manifest; ranks, resume and bad input behave as for any source."""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import webdataset as wds
from lhotse_corpus import Corpus, make_corpus
from test_prep_pipeline import tree

from data_prep import unit_processor
from data_prep.audio_io import load_audio
from data_prep.cli import main as prep_main
from data_prep.cli import run
from data_prep.config import load_config
from data_prep.errors import SourceError
from data_prep.lhotse_audio import FileChannels, LhotseRecording, SharMember
from data_prep.lhotse_source import read_lhotse


def _config(out: Path, tokenizer, kind: str, path: Path, **extra):
    base = {
        "name": "lhotse",
        "output": str(out),
        "tokenizer": str(tokenizer.path),
        "source.kind": kind,
        "source.path": str(path),
        "aligner.backend": "given",
        "shards.items_per_unit": 2,
        "shards.max_samples": 1,
        "shards.valid_fraction": 0.25,
        "shards.test_fraction": 0.25,
    } | extra
    return load_config(None, [f"{k}={json.dumps(v)}" for k, v in base.items()])


def _samples(out: Path) -> dict[str, list[tuple[str, bytes, dict]]]:
    """Shard → its samples (key, FLAC, JSON without ``source``, which names the input file)."""
    found = {}
    for shard in sorted(out.rglob("*.tar")):
        rows = []
        for s in wds.WebDataset(str(shard), shardshuffle=False):
            meta = json.loads(s["json"])
            assert meta.pop("source")
            rows.append((s["__key__"], s["flac"], meta))
        found[str(shard.relative_to(out))] = rows
    return found


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    return make_corpus(tmp_path_factory.mktemp("lhotse"))


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory, tokenizer) -> dict[str, Path]:
    """The corpus prepared from the manifest, the CutSet and the Shar directory (one rank)."""
    outs = {}
    for kind, path in (
        ("manifest", corpus.manifest),
        ("lhotse", corpus.cutset_path),
        ("shar", corpus.shar_dir),
    ):
        outs[kind] = tmp_path_factory.mktemp(kind)
        source_kind = "manifest" if kind == "manifest" else "lhotse"
        summary = run(_config(outs[kind], tokenizer, source_kind, path), progress=False)
        assert summary["kept_samples"] == 4 and summary["rejected"] == 0, summary
    return outs


def test_one_item_per_supervision_with_its_window_channel_and_words(corpus) -> None:
    items = list(read_lhotse(corpus.cutset_path))
    assert [i.key for i in items] == [
        "00000000_rec_a-0",
        "00000001_rec_a-1",
        "00000002_rec_b-2",
        "00000003_rec_b-3",
    ]
    assert [i.speaker for i in items] == ["alice", "alice", "bob", None]
    assert items[0].audio == items[1].audio == str(corpus.root / "rec_a.wav")
    assert items[3].audio == FileChannels(str(corpus.root / "rec_b.wav"), (1,))
    assert (items[1].start, items[3].start) == (3.25, 0.75)
    # alignment times (relative to the recording) become times in the supervision's window
    first = items[1].words[0]
    assert first.word == "Please" and 0.25 <= first.start < 0.4
    shar = list(read_lhotse(corpus.shar_dir))
    assert [(i.key, i.text, i.words) for i in shar] == [(i.key, i.text, i.words) for i in items]
    assert isinstance(shar[3].audio, SharMember) and shar[3].audio.channels is None
    for a, b in zip(items, shar, strict=True):  # Shar's FLAC holds the same samples
        assert np.array_equal(
            load_audio(a.audio, a.start, a.end), load_audio(b.audio, b.start, b.end)
        )


def test_truncated_cut_keeps_windows_and_word_times(corpus, tmp_path) -> None:
    """lhotse's own ``truncate`` moves supervisions, not alignments: the items stay the same."""
    from lhotse import CutSet

    cut = corpus.cuts[0].truncate(offset=0.125, duration=6.5)
    CutSet.from_cuts([cut]).to_file(tmp_path / "t.jsonl.gz")
    moved = list(read_lhotse(tmp_path / "t.jsonl.gz"))
    original = list(read_lhotse(corpus.cutset_path))[:2]
    assert cut.start == 0.125 and cut.supervisions[0].start == 0.125
    assert [(i.start, i.end, i.words) for i in moved] == [
        (i.start, i.end, i.words) for i in original
    ]


@pytest.mark.filterwarnings("ignore:You requested a subset of a recording")
def test_recordings_lhotse_loads_itself(corpus, tmp_path) -> None:
    """A command source goes through lhotse (window and channel); a supervision on both
    channels of a file averages them, like any other source."""
    from lhotse import AudioSource, CutSet, MultiCut, Recording, SupervisionSegment

    stereo = corpus.root / "rec_b.wav"
    rec = Recording.from_file(stereo)
    piped = Recording(
        "piped",
        [AudioSource("command", [0, 1], f"cat {stereo}")],
        rec.sampling_rate,
        rec.num_samples,
        rec.duration,
    )
    sup = corpus.cuts[1].supervisions[0]  # rec_b-2, on channel 0
    both = SupervisionSegment("both", rec.id, 0.5, 1.0, channel=[0, 1], text="two channels")
    cuts = [
        MultiCut("p", 0.0, rec.duration, [0, 1], recording=piped, supervisions=[sup]),
        MultiCut("m", 0.0, rec.duration, [0, 1], recording=rec, supervisions=[both]),
    ]
    CutSet.from_cuts(cuts).to_file(tmp_path / "c.jsonl.gz")
    via_lhotse, averaged = read_lhotse(tmp_path / "c.jsonl.gz")
    assert isinstance(via_lhotse.audio, LhotseRecording) and via_lhotse.start is None
    ours = list(read_lhotse(corpus.cutset_path))[2]
    np.testing.assert_array_equal(
        load_audio(via_lhotse.audio), load_audio(ours.audio, ours.start, ours.end)
    )
    assert averaged.audio == str(stereo)
    samples, _ = sf.read(stereo, dtype="float32", start=8000, stop=24000)
    np.testing.assert_allclose(
        load_audio(averaged.audio, 0.5, 1.5), samples.mean(axis=1), atol=1e-7
    )


def test_cutset_and_shar_give_the_manifest_shards(prepared) -> None:
    reference = _samples(prepared["manifest"])
    assert sum(len(v) for v in reference.values()) == 4 and len(reference) == 4
    assert _samples(prepared["lhotse"]) == reference
    assert _samples(prepared["shar"]) == reference


def test_two_ranks_and_merge_equal_one_rank(prepared, corpus, tmp_path, tokenizer) -> None:
    for rank in (0, 1):
        config = _config(tmp_path, tokenizer, "lhotse", corpus.shar_dir)
        assert run(config, rank=rank, world_size=2, progress=False) is None
    assert prep_main(["merge", "--output", str(tmp_path)]) == 0
    assert tree(tmp_path) == tree(prepared["shar"])


def test_killed_run_resumes_byte_identical(prepared, corpus, tmp_path, tokenizer, monkeypatch):
    real_write = unit_processor.UnitShardWriter.write
    calls = {"n": 0}

    def dying_write(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # in the second unit, after the first finished
            raise KeyboardInterrupt("killed")
        return real_write(self, *args, **kwargs)

    config = _config(tmp_path, tokenizer, "lhotse", corpus.cutset_path)
    monkeypatch.setattr(unit_processor.UnitShardWriter, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        run(config, progress=False)
    assert len(list((tmp_path / "_units").glob("*.json"))) == 1
    monkeypatch.setattr(unit_processor.UnitShardWriter, "write", real_write)
    run(config, progress=False)
    assert tree(tmp_path) == tree(prepared["lhotse"])


# --------------------------------------------------------------------------- bad input


def _bad_cutset(corpus: Corpus, d: Path) -> Path:
    """Every kind of bad lhotse input beside one good cut; written with lhotse's writer."""
    from lhotse import AudioSource, CutSet
    from lhotse.supervision import AlignmentItem
    from lhotse.utils import fastcopy

    good, stereo = corpus.cuts[0], corpus.cuts[2]
    sup = stereo.supervisions[0]
    (d / "garbage.wav").write_bytes(np.random.default_rng(0).bytes(5000))

    def elsewhere(path: Path):
        source = AudioSource("file", [0, 1], str(path))
        return fastcopy(stereo, recording=fastcopy(stereo.recording, sources=[source]))

    far = [AlignmentItem("Take", 9.0, 0.5)]
    cuts = [
        good,  # two supervisions, both kept
        fastcopy(elsewhere(d / "gone.wav"), id="gone"),
        fastcopy(elsewhere(d / "garbage.wav"), id="garbage"),
        fastcopy(stereo, id="no_text", supervisions=[fastcopy(sup, text=None)]),
        fastcopy(stereo, id="blank", supervisions=[fastcopy(sup, text="  ")]),
        fastcopy(stereo, id="silent_cut", supervisions=[]),
        fastcopy(stereo, id="ch3", supervisions=[fastcopy(sup, channel=3)]),
        fastcopy(stereo, id="far", supervisions=[fastcopy(sup, alignment={"word": far})]),
        fastcopy(stereo, id="features_only", recording=None),
    ]
    path = d / "bad.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(path)
    with gzip.open(path, "at") as f:
        f.write("not json\n")
    return path


def test_bad_cutset_input_is_counted(corpus, tmp_path, tokenizer) -> None:
    path = _bad_cutset(corpus, tmp_path)
    summary = run(_config(tmp_path / "out", tokenizer, "lhotse", path), progress=False)
    assert summary["kept_samples"] == 2
    assert summary["rejects_by_reason"] == {
        "bad_manifest_row": 1,
        "bad_timestamps": 1,
        "empty_transcript": 2,
        "missing_channel": 1,
        "missing_file": 1,
        "no_recording": 1,
        "no_supervision": 1,
        "unreadable": 1,
    }
    messages = {e["reason"]: e["message"] for e in summary["reject_examples"]}
    assert "gone.wav does not exist" in messages["missing_file"]
    assert "bad.jsonl.gz:10" in messages["bad_manifest_row"]
    assert "channels [3]" in messages["missing_channel"]


def test_bad_shar_input_is_counted(corpus, tmp_path, tokenizer) -> None:
    from lhotse import CutSet
    from lhotse.utils import fastcopy

    cuts = [*corpus.cuts, fastcopy(corpus.cuts[2], id="no_audio", recording=None)]
    shar = tmp_path / "shar"
    shar.mkdir()
    CutSet.from_cuts(cuts).to_shar(shar, fields={"recording": "flac"}, shard_size=None)
    with tarfile.open(shar / "recording.tar") as tf:  # rot one cut's FLAC in place
        member = tf.getmember("rec_b_ch0.flac")
    with open(shar / "recording.tar", "r+b") as f:
        f.seek(member.offset_data)
        f.write(np.random.default_rng(1).bytes(member.size))
    summary = run(_config(tmp_path / "out", tokenizer, "lhotse", shar), progress=False)
    assert summary["kept_samples"] == 3
    assert summary["rejects_by_reason"] == {"no_recording": 1, "unreadable": 1}


def test_shar_without_recordings_names_its_fields(corpus, tmp_path) -> None:
    corpus.cuts.to_shar(tmp_path, fields={}, shard_size=None, warn_unused_fields=False)
    with pytest.raises(SourceError, match=r"no 'recording' field \(its fields: \['cuts'\]\)"):
        list(read_lhotse(tmp_path))


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".json"])
def test_recordings_for_cuts_end_the_run_cleanly(
    corpus, tmp_path, tokenizer, capsys, suffix
) -> None:
    """A RecordingSet where a CutSet belongs: exit status 1 and one line naming the file and
    the fix, no traceback (a JSONL file is read line by line, a JSON one by lhotse whole)."""
    path = tmp_path / f"recordings{suffix}"
    corpus.cuts.decompose()[0].to_file(path)
    argv = ["run", "--output", str(tmp_path / "out"), "--tokenizer", str(tokenizer.path)]
    argv += ["--source.kind=lhotse", f"--source.path={path}", "--no-progress"]
    assert prep_main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"vrt-prep run: error: {path}"), err
    assert "give a CutSet" in err and "Traceback" not in err
