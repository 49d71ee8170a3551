"""vrt-transcribe: word times read back from target streams, cues, SRT/VTT read by ffmpeg, the
live transcript, and the command on espeak-ng speech in several containers and rates.

The command's model is random (``make_chatty_model``): what it writes is noise, but its stream
mixes ``[W]`` groups, ``[P]`` and text, which is what every output is made of. These tests check
the outputs' form and their agreement with the stream; whether a transcript is right takes a
trained model (the demo's).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import yaml

from vrt_finetune import constants as C
from vrt_finetune.config_parser import legacy_argv, parse, positionals_to_list
from vrt_finetune.decode import DecodedWord, parse_stream
from vrt_finetune.subtitles import (
    CHARACTERS_PER_SECOND,
    Cue,
    TimedWord,
    make_cues,
    timed_words,
    to_srt,
    to_vtt,
)
from vrt_finetune.targets import build_targets
from vrt_finetune.transcribe import LiveText, TranscribeConfig, main, transcribe_parser

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOKEN = C.TOKEN_SECONDS


def _assert_ordered(words: list[TimedWord], duration: float) -> None:
    previous_end = 0.0
    for w in words:
        assert previous_end - 1e-9 <= w.start <= w.end <= duration + 1e-9, w
        previous_end = w.end


# --------------------------------------------------------------------------- word times


@pytest.mark.parametrize("delay_ms", [80, 480, 2400])
def test_word_times_read_target_streams_back(tokenizer, delay_ms: int) -> None:
    """A stream written by the target rule gives each word's end to within its 80 ms frame."""
    words = ["The", "patient", "was", "treated", "for", "a", "fibrillation", "today."]
    ends = [0.12, 0.66, 1.02, 1.34, 1.56, 1.59, 2.77, 3.30]  # "for a": one frame, one group
    duration = 3.4
    targets = build_targets(
        words, ends, C.seconds_to_samples(duration), tokenizer.encode, tokenizer.ids
    )
    decoded = parse_stream(list(targets.stream), tokenizer, delay_ms)
    timed = timed_words(decoded.words, duration)
    assert [w.word for w in timed] == words
    _assert_ordered(timed, duration)
    group_of = {word: g for g in targets.groups for word in g.words}
    assert group_of["for"] is group_of["a"]
    for w, end in zip(timed, ends, strict=True):
        g = group_of[w.word]
        assert w.emitted == pytest.approx(g.start * TOKEN + delay_ms / 1000)
        group_end = min(g.start * TOKEN, duration)
        if w.word == g.words[-1]:  # the group's earlier words share its span
            assert w.end == pytest.approx(group_end)
        if g.start == g.frame:  # it did not wait behind the group before it
            assert group_end - TOKEN < end <= group_end
    # "for" and "a" share their group's span, in proportion to their length (+ 1)
    f, a = timed[4], timed[5]
    assert f.end == pytest.approx(a.start)
    assert (f.end - f.start) / (a.end - a.start) == pytest.approx(4 / 2)
    # "The" from the start of the audio, at most (3 + 1) / 14 s before its end
    assert timed[0].start == pytest.approx(max(0.0, timed[0].end - 4 / CHARACTERS_PER_SECOND))


def test_word_times_after_a_pause_and_past_the_end() -> None:
    words = [
        DecodedWord("hello", 40, 0.88, 0.40),
        DecodedWord("world", 73, 3.52, 3.04),  # 2.6 s later
        DecodedWord("again", 80, 4.08, 3.60),  # written in the right padding, past the audio
        DecodedWord("end", 81, 4.16, 3.68),
    ]
    timed = timed_words(words, duration=3.5)
    _assert_ordered(timed, 3.5)
    # a word after a pause starts (characters + 1) / 14 s before its end, not at the last word
    assert timed[1].start == pytest.approx(3.04 - 6 / CHARACTERS_PER_SECOND)
    assert timed[1].start > timed[0].end
    # ends never pass the audio; emission times are kept as the model wrote them
    assert [w.end for w in timed[2:]] == [3.5, 3.5]
    assert [w.emitted for w in timed] == [0.88, 3.52, 4.08, 4.16]
    assert timed_words([], 1.0) == []


# --------------------------------------------------------------------------- cues, SRT, VTT


def _words(*spec: tuple[str, float, float]) -> list[TimedWord]:
    return [TimedWord(w, s, e, e + 0.48) for w, s, e in spec]


def test_cues_by_length_pause_duration_and_sentence() -> None:
    words = _words(
        ("one", 0.0, 0.3), ("two", 0.3, 0.6), ("three.", 0.6, 1.0),  # sentence end
        ("four", 1.0, 1.3), ("five", 2.0, 2.3),  # 0.7 s pause
        ("a" * 50, 2.3, 3.0),  # longer than a line: a cue of its own
        ("six", 3.0, 3.2), ("seven", 3.2, 6.0), ("eight", 6.0, 8.5),  # > 5 s
    )  # fmt: skip
    cues = make_cues(words, max_chars=20)
    assert [c.text for c in cues] == [
        "one two three.", "four", "five", "a" * 50, "six seven", "eight",
    ]  # fmt: skip
    assert [(c.start, c.end) for c in cues][:2] == [(0.0, 1.0), (1.0, 1.3)]
    assert all(len(c.text) <= 20 for c in cues if " " in c.text)
    # at most 42 characters: ten 3-letter words (39), then the rest
    long_line = _words(*[(f"w{i:02d}", i * 0.1, i * 0.1 + 0.1) for i in range(12)])
    assert [len(c.text) for c in make_cues(long_line)] == [39, 7]
    with pytest.raises(ValueError, match="positive"):
        make_cues(words, max_chars=0)


def _ffmpeg(*args: str) -> str:
    return subprocess.run(
        ["ffmpeg", "-v", "error", *args], check=True, capture_output=True, text=True
    ).stdout


def _ffprobe_cues(path: Path) -> list[tuple[int, int]]:
    """Each cue's start and end in ms, as ffprobe reads them."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_entries",
         "packet=pts_time,duration_time", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [
        (start, start + length)
        for start, length in (
            (round(float(p["pts_time"]) * 1000), round(float(p["duration_time"]) * 1000))
            for p in json.loads(out)["packets"]
        )
    ]


def _check_subtitles(srt: Path, vtt: Path) -> list[tuple[int, int]]:
    """ffmpeg reads both files as the same cues; returns their spans."""
    spans = _ffprobe_cues(srt)
    assert _ffprobe_cues(vtt) == spans
    assert _ffmpeg("-i", str(srt), "-f", "srt", "-") == srt.read_text()
    assert _ffmpeg("-i", str(vtt), "-f", "srt", "-") == srt.read_text()
    return spans


def test_srt_and_vtt_read_by_ffmpeg(tmp_path) -> None:
    cues = [
        Cue(0.0, 1.2345, "hello world"),
        Cue(1.5, 61.0, "a minute"),
        Cue(3725.25, 3727.0, "an hour later"),
    ]
    (tmp_path / "x.srt").write_text(to_srt(cues))
    (tmp_path / "x.vtt").write_text(to_vtt(cues))
    assert to_srt(cues).startswith("1\n00:00:00,000 --> 00:00:01,234\nhello world\n\n2\n")
    assert "01:02:05.250 --> 01:02:07.000\nan hour later\n" in to_vtt(cues)
    spans = _check_subtitles(tmp_path / "x.srt", tmp_path / "x.vtt")
    assert spans == [(0, 1234), (1500, 61000), (3725250, 3727000)]
    # markup and the timing arrow cannot leak from a cue's text
    assert to_vtt([Cue(0, 1, "a<b> & c-->d")]).endswith("a&lt;b&gt; &amp; c-&gt;d\n\n")
    assert "c->d" in to_srt([Cue(0, 1, "c-->d")])


# --------------------------------------------------------------------------- live text


def test_live_text_joins_into_the_transcript(tokenizer) -> None:
    P, W, EOS = tokenizer.pad_id, tokenizer.word_id, tokenizer.eos_id
    text = tokenizer.encode(" naïve café, 東京 ok")
    # the test vocabulary spells the non-ASCII characters in bytes: some ids are half a character
    assert any(not _is_utf8(tokenizer.text_bytes(t)) for t in text)
    stream = [P, W, *text[:3], P, W, *text[3:], P, EOS, W, *tokenizer.encode(" after")]
    pieces: list[str] = []
    live = LiveText(tokenizer, pieces.append)
    for token in stream:
        live.feed(token)
    live.close()
    assert "".join(pieces) == parse_stream(stream, tokenizer, 480).text == "naïve café, 東京 ok"
    assert "\ufffd" not in "".join(pieces) and len(pieces) > 3

    # a stream that ends inside a character: the same replacement character as decode's
    split = next(i for i, t in enumerate(text) if not _is_utf8(tokenizer.text_bytes(t)))
    cut = [W, *text[: split + 1]]
    pieces.clear()
    live = LiveText(tokenizer, pieces.append)
    for token in cut:
        live.feed(token)
    live.close()
    assert "".join(pieces) == parse_stream(cut, tokenizer, 480).text
    assert "".join(pieces).endswith("\ufffd")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --------------------------------------------------------------------------- command line


def test_positionals_to_list() -> None:
    def split(*argv: str) -> list[str]:
        return positionals_to_list(list(argv), "audio", TranscribeConfig)

    assert split("a.wav", "--model", "M", "b.mp3", "--quiet", "c.flac") == [
        "--model", "M", "--quiet", '--audio=["a.wav", "b.mp3", "c.flac"]',
    ]  # fmt: skip
    assert split("--quiet", "true", "a.wav", "--delay-ms", "480") == [
        "--quiet", "true", "--delay-ms", "480", '--audio=["a.wav"]',
    ]  # fmt: skip
    assert split("--config", "x.yaml", "--audio", "a", "b", "--model=M", "--", "-c.wav") == [
        "--config", "x.yaml", "--model=M", '--audio=["a", "b", "-c.wav"]',
    ]  # fmt: skip
    assert split("--print_config") == ["--print_config"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tokenizer):
    """A random model and its adapter; one espeak-ng sentence as 8 kHz wav, 44.1 kHz stereo
    flac, ogg and mp3; a missing and a broken file."""
    from data_prep.synth import synthesize
    from vrt_finetune.lora import LoraSettings, apply_lora, save_adapter
    from vrt_finetune.testing import make_chatty_model, save_tiny_checkpoint

    root = tmp_path_factory.mktemp("transcribe")
    base = save_tiny_checkpoint(root / "base", tokenizer, model=make_chatty_model(tokenizer))
    adapter = save_adapter(
        apply_lora(make_chatty_model(tokenizer), LoraSettings(rank=2)), root / "adapter"
    )
    speech = synthesize("the patient takes metformin.", rate_wpm=220)
    sf.write(root / "speech.wav", speech.audio, C.SAMPLE_RATE)
    audio = root / "audio"
    audio.mkdir()
    conversions = {
        "phone.wav": ["-ar", "8000"],
        "studio.flac": ["-ar", "44100", "-ac", "2"],
        "voice.ogg": ["-ar", "22050", "-c:a", "libvorbis"],
        "podcast.mp3": ["-ar", "48000", "-c:a", "libmp3lame"],
    }
    for name, args in conversions.items():
        _ffmpeg("-i", str(root / "speech.wav"), *args, str(audio / name))
    (audio / "broken.mp3").write_bytes(np.random.default_rng(0).bytes(4000))
    return SimpleNamespace(
        root=root,
        base=base,
        adapter=adapter,
        duration=len(speech.audio) / C.SAMPLE_RATE,
        good=[audio / name for name in conversions],
        missing=audio / "missing.wav",
        broken=audio / "broken.mp3",
    )


def _sections(stdout: str) -> dict[str, str]:
    """``==> FILE <==`` headers and the transcript printed under each."""
    parts = re.split(r"^==> (.+) <==\n", stdout, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_transcribes_files_of_any_container_and_rate(inputs, capsys) -> None:
    x, out = inputs, inputs.root / "out"
    files = [x.good[0], x.missing, *x.good[1:3], x.broken, x.good[3]]
    argv = [*map(str, files), "--model", f"{x.base}:{x.adapter}", "--delay-ms", "480",
            "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 1
    stdout, stderr = capsys.readouterr()
    assert f"{x.missing}: no such file" in stderr and f"{x.broken}: " in stderr
    assert "2 of 6 files failed" in stderr
    printed = _sections(stdout)
    assert sorted(printed) == sorted(map(str, x.good))
    n_words = 0
    for path in x.good:
        result = json.loads((out / f"{path.stem}.json").read_text())
        assert (result["model"], result["adapter"]) == (str(x.base), str(x.adapter))
        assert result["delay_ms"] == 480 and "estimated" in result["times"]
        assert result["duration"] == pytest.approx(x.duration, abs=0.01)
        words = [TimedWord(w["word"], w["start"], w["end"], w["emitted"]) for w in result["words"]]
        # what was printed while decoding is the transcript the files hold
        assert printed[str(path)].split() == [w.word for w in words] == result["text"].split()
        _assert_ordered(words, result["duration"])
        for w, after in zip(words, [*words[1:], None], strict=True):
            if after is None or after.emitted != w.emitted:  # the last word of its [W] group
                assert w.end == pytest.approx(min(w.emitted - 0.48, result["duration"]), abs=1e-3)
        spans = _check_subtitles(out / f"{path.stem}.srt", out / f"{path.stem}.vtt")
        srt_text = (out / f"{path.stem}.srt").read_text()
        cue_words = [t for block in srt_text.split("\n\n") for t in block.split("\n")[2:]]
        assert " ".join(cue_words).split() == [w.word for w in words]
        assert all(a <= b for a, b in spans) and spans == sorted(spans)
        n_words += len(words)
    # the random model wrote words in several [W] groups: the checks above are not vacuous
    assert n_words > 10, n_words


def test_writes_beside_the_audio(inputs, tmp_path, capsys) -> None:
    audio = tmp_path / "take 1.flac"
    shutil.copy(inputs.good[1], audio)
    assert main([str(audio), "--model", str(inputs.base), "--quiet", "--delay_ms=240"]) == 0
    assert capsys.readouterr().out == ""
    result = json.loads((tmp_path / "take 1.json").read_text())
    assert result["adapter"] is None and result["delay_ms"] == 240
    assert (tmp_path / "take 1.srt").exists() and (tmp_path / "take 1.vtt").exists()


def test_usage_and_model_errors(inputs, tmp_path, capsys) -> None:
    wav, flac = str(inputs.good[0]), str(inputs.good[1])
    model = ["--model", str(inputs.base)]
    for argv, message in [
        ([wav], "give audio files and --model"),
        ([wav, *model, "--delay_ms", "500"], "multiple of 80 ms"),
        ([wav, flac.replace("studio.flac", "phone.flac"), *model], "would both write"),
        ([str(tmp_path / "x.json"), *model], "replace an input file"),
    ]:
        with pytest.raises(SystemExit) as err:
            main(argv)
        assert err.value.code == 2 and message in capsys.readouterr().err
    assert main([wav, "--model", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 1
    assert "no such model directory" in capsys.readouterr().err
    # only unreadable files: the model is never loaded
    assert main([str(inputs.missing), "--model", str(tmp_path / "nope")]) == 1
    assert "no such model directory" not in capsys.readouterr().err


def test_print_config_round_trips_and_help(tmp_path, capsys) -> None:
    argv = ["a.wav", "--model", "/m:/ad", "b.mp3", "--delay-ms", "960", "--out", "t"]
    with pytest.raises(SystemExit) as err:
        main([*argv, "--print_config"])
    assert err.value.code == 0
    printed = capsys.readouterr().out
    assert yaml.safe_load(printed)["audio"] == ["a.wav", "b.mp3"]
    (tmp_path / "t.yaml").write_text(printed)
    parser = transcribe_parser()
    from_file = parse(TranscribeConfig, parser, ["--config", str(tmp_path / "t.yaml")])
    direct = parse(
        TranscribeConfig,
        parser,
        legacy_argv(positionals_to_list(argv, "audio", TranscribeConfig), TranscribeConfig),
    )
    assert from_file == direct and direct.spec.adapter == "/ad" and direct.delay_ms == 960
    with pytest.raises(SystemExit):
        main(["--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert "BASE[:ADAPTER]" in flat and "--delay_ms" in flat and "--print_config" in flat
