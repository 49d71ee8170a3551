"""Tests of the espeak-ng synthetic speech source and its sentence corpus."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from data_prep.espeak_worker import espeak_available
from data_prep.sentences import MEDICAL_TERMS, sentence_corpus
from data_prep.synth import SynthUtterance, _word_spans, synthesize
from vrt_finetune.constants import SAMPLE_RATE, seconds_to_samples

needs_espeak = pytest.mark.skipif(not espeak_available(), reason="libespeak-ng not installed")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _segment(u: SynthUtterance, start: float, end: float) -> np.ndarray:
    return u.audio[seconds_to_samples(start) : seconds_to_samples(end)]


def _check_words(u: SynthUtterance) -> None:
    """The invariants every utterance keeps."""
    assert [w.word for w in u.words] == u.text.split()
    previous_end = 0.0
    for w in u.words:
        assert previous_end <= w.start < w.end <= u.duration, w
        previous_end = w.end


@pytest.fixture(scope="module")
def stop_go() -> SynthUtterance:
    return synthesize("Stop. Go now.", lead_silence_s=0.3)


# --- synthesize ---------------------------------------------------------------------------------


@needs_espeak
@pytest.mark.parametrize(
    "text",
    [
        "Stop. Go now.",
        "I have 42 apples, my heart, and a well-known café.",
        "The patient has tachycardia and hypertension.",
        'He said: "hello" (twice) & left.',
    ],
)
def test_one_timed_word_per_token(text: str) -> None:
    _check_words(synthesize(text))


@needs_espeak
def test_audio_format(stop_go: SynthUtterance) -> None:
    assert stop_go.audio.dtype == np.float32
    assert stop_go.audio.ndim == 1
    assert stop_go.duration == len(stop_go.audio) / SAMPLE_RATE
    assert 0.05 < np.abs(stop_go.audio).max() <= 1.0
    assert not stop_go.audio.flags.writeable
    assert (stop_go.voice, stop_go.rate_wpm, stop_go.approximate) == ("en-us", 160, ())


@needs_espeak
def test_punctuation_stays_on_the_word() -> None:
    u = synthesize("Listen to my heart, then rest.")
    assert [w.word for w in u.words] == ["Listen", "to", "my", "heart,", "then", "rest."]
    heart, then = u.words[3], u.words[4]
    # The comma is a pause: it lies between the two words, not inside "heart,".
    assert then.start - heart.end > 0.05
    assert _rms(_segment(u, heart.end, then.start)) < 0.01


@needs_espeak
def test_number_spoken_as_several_words_is_one_token() -> None:
    u = synthesize("I have 42 apples.")
    _check_words(u)
    number = u.words[2]
    assert number.word == "42"
    # "forty two" takes far longer than "I".
    assert number.end - number.start > 2 * (u.words[0].end - u.words[0].start)


@needs_espeak
def test_deterministic() -> None:
    first = synthesize("The heart rate is stable today.")
    synthesize("Something else, spoken in between.", voice="en-gb", rate_wpm=220, pitch=70)
    again = synthesize("The heart rate is stable today.")
    np.testing.assert_array_equal(first.audio, again.audio)
    assert first.words == again.words


@needs_espeak
def test_word_audio_is_loud_and_gaps_are_quiet(stop_go: SynthUtterance) -> None:
    stop, go, _ = stop_go.words
    speech = min(_rms(_segment(stop_go, w.start, w.end)) for w in stop_go.words)
    assert speech > 0.02
    # The sentence break after "Stop." is a pause of silence.
    assert go.start - stop.end > 0.2
    assert _rms(_segment(stop_go, stop.end, go.start)) < 0.02 * speech
    # Before the first word: the requested lead silence and espeak's own short onset.
    assert stop.start >= 0.3
    assert np.abs(_segment(stop_go, 0.0, stop.start)).max() < 0.01
    assert not _segment(stop_go, 0.0, 0.29).any()


@needs_espeak
def test_lead_silence_shifts_audio_and_times(stop_go: SynthUtterance) -> None:
    plain = synthesize("Stop. Go now.")
    n_lead = seconds_to_samples(0.3)
    np.testing.assert_array_equal(stop_go.audio[n_lead:], plain.audio)
    for shifted, word in zip(stop_go.words, plain.words, strict=True):
        assert shifted.start == pytest.approx(word.start + 0.3, abs=1e-9)
        assert shifted.end == pytest.approx(word.end + 0.3, abs=1e-9)


@needs_espeak
def test_rate_changes_duration() -> None:
    slow = synthesize("We will open the window tomorrow.", rate_wpm=120)
    fast = synthesize("We will open the window tomorrow.", rate_wpm=240)
    assert fast.duration < 0.75 * slow.duration


@needs_espeak
def test_non_ascii_positions_are_characters() -> None:
    # Offsets counted in bytes would drift by one token per two accented words here.
    u = synthesize("été été café naïve déjà go")
    _check_words(u)
    assert u.approximate == ()  # every token got its own word event
    gaps = [b.start - a.end for a, b in zip(u.words, u.words[1:], strict=False)]
    assert all(g < 0.1 for g in gaps)  # one phrase, no token stretched over its neighbour's time


@needs_espeak
def test_tokens_spoken_together_are_flagged() -> None:
    # espeak-ng's dictionary speaks "for a" as one word: both tokens get shared-out times.
    u = synthesize("She was treated for a fracture.")
    _check_words(u)
    assert u.approximate == (3, 4)


@needs_espeak
def test_threads_synthesize_in_parallel() -> None:
    # Each call has its own espeak-ng process: concurrent calls give the serial results.
    texts = ["Stop. Go now.", "The old man found the red box.", "Is the lamp near the park?"]
    serial = [synthesize(t).audio for t in texts]
    with ThreadPoolExecutor(3) as pool:
        parallel = list(pool.map(lambda t: synthesize(t).audio, texts * 2))
    for a, b in zip(serial * 2, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


@needs_espeak
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": "   "}, "no words"),
        ({"text": "x -- y"}, "lost the word"),
        ({"text": "hi", "voice": "no-such-voice"}, "no voice"),
        ({"text": "hi", "rate_wpm": 20}, "rate_wpm"),
        ({"text": "hi", "pitch": 101}, "pitch"),
        ({"text": "hi", "lead_silence_s": -1.0}, "lead_silence_s"),
    ],
)
def test_bad_input_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        synthesize(**kwargs)


@needs_espeak
def test_corpus_sentences_are_timed_exactly() -> None:
    for sentence in sentence_corpus(4, 0, "general") + sentence_corpus(4, 0, "medical"):
        u = synthesize(sentence)
        _check_words(u)
        assert u.approximate == ()


# --- word times from events (no espeak needed) -------------------------------------------------


def test_word_spans_from_hand_written_events() -> None:
    text = "Go 42 now."
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    tokens = text.split()
    # (sample, 0-based char offset, length): "42" comes as "forty" and "two".
    words = [(0, 0, 2), (100, 3, 2), (200, 4, 2), (300, 6, 4)]
    phonemes = [
        (10, "g"), (40, "oU"),  # Go
        (100, "f"), (130, "o@"), (160, "t"), (180, "i"),  # forty
        (200, "t"), (230, "u:"), (260, "_:"),  # two, then a pause
        (310, "n"), (340, "aU"), (390, "_:"), (400, "_"),  # now.
    ]  # fmt: skip
    times, approximate = _word_spans(spans, words, phonemes, 420, tokens)
    assert times == [(10, 100), (100, 260), (310, 390)]
    assert approximate == []


def test_word_spans_share_out_tokens_spoken_as_one() -> None:
    text = "for a fix"
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    words = [(0, 0, 3), (400, 6, 3)]  # no event for "a"
    phonemes = [(0, "f"), (100, "3"), (200, "r-"), (300, "@"), (400, "f"), (500, "I")]
    times, approximate = _word_spans(spans, words, phonemes, 600, text.split())
    # 4 phonemes, letters 3:1 → "for" = f 3 r-, "a" = @.
    assert times == [(0, 300), (300, 400), (400, 600)]
    assert approximate == [0, 1]


def test_word_spans_refuse_a_lost_punctuation_token() -> None:
    text = "x -- y"
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    words = [(0, 0, 1), (100, 2, 2)]  # espeak gives "y" the position of "--"
    phonemes = [(0, "E"), (50, "k"), (100, "w"), (150, "aI")]
    with pytest.raises(ValueError, match="lost the word"):
        _word_spans(spans, words, phonemes, 200, text.split())


# --- corpus -------------------------------------------------------------------------------------


@pytest.mark.parametrize("vocabulary", ["general", "medical"])
def test_corpus_is_deterministic_and_short(vocabulary: str) -> None:
    sentences = sentence_corpus(200, 7, vocabulary)  # type: ignore[arg-type]
    assert sentences == sentence_corpus(200, 7, vocabulary)  # type: ignore[arg-type]
    assert sentences != sentence_corpus(200, 8, vocabulary)  # type: ignore[arg-type]
    assert len(sentences) == 200
    for s in sentences:
        assert 4 <= len(s.split()) <= 10, s
        assert s[0].isupper() and s[-1] in ".?", s


def test_medical_sentences_carry_a_term() -> None:
    terms = set(MEDICAL_TERMS)
    for s in sentence_corpus(200, 0, "medical"):
        assert terms & {w.strip(".,?").lower() for w in s.split()}, s


def test_general_vocabulary_is_small() -> None:
    words = {w.strip(".,?").lower() for s in sentence_corpus(2000, 0, "general") for w in s.split()}
    assert len(words) <= 300


def test_corpus_rejects_unknown_vocabulary() -> None:
    with pytest.raises(ValueError, match="vocabulary"):
        sentence_corpus(3, 0, "legal")  # type: ignore[arg-type]
