"""Mapping aligned spoken words back to written words, long-recording splits and filters."""

import pytest

from data_prep.align.base import AlignedWord
from data_prep.segment import (
    Filters,
    Word,
    gaps,
    map_to_written,
    reject_reason,
    split_at_pauses,
)
from data_prep.spoken_form import normalize_transcript


def aw(word: str, start: float, end: float, score: float = 0.9, flagged: bool = False):
    return AlignedWord(word, start, end, score, flagged)


def test_numbers_map_back_to_the_written_digits() -> None:
    norm = normalize_transcript("Take 42 pills!", "en")
    spoken = [s for n in norm for s in n.spoken]
    assert spoken == ["take", "forty", "two", "pills"]
    aligned = [
        aw("take", 0.1, 0.3),
        aw("forty", 0.4, 0.6),
        aw("two", 0.6, 0.8, flagged=True),
        aw("pills", 0.9, 1.2),
    ]
    words = map_to_written(norm, aligned)
    assert [w.word for w in words] == ["Take", "42", "pills!"]
    assert (words[1].start, words[1].end) == (0.4, 0.8)
    assert words[1].flagged and not words[0].flagged
    assert words[1].score == pytest.approx(0.9)


def test_silent_tokens_attach_to_a_neighbour() -> None:
    norm = normalize_transcript("— well , fine 🙂", "en")
    spoken = [s for n in norm for s in n.spoken]
    aligned = [aw(s, i * 0.5, i * 0.5 + 0.3) for i, s in enumerate(spoken)]
    words = map_to_written(norm, aligned)
    assert [w.word for w in words] == ["— well ,", "fine 🙂"]


def test_count_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="aligned words"):
        map_to_written(normalize_transcript("a b", "en"), [aw("a", 0, 1)])


def words_every(step: float, n: int, length: float = 0.4) -> list[Word]:
    return [Word(f"w{i}", i * step, i * step + length, 1.0, False) for i in range(n)]


def test_short_recording_is_one_segment() -> None:
    words = words_every(1.0, 5)
    assert split_at_pauses(words, 5.0, 30.0) == [(0.0, 5.0, words)]


def test_long_recording_splits_at_pauses_never_inside_words() -> None:
    words = words_every(1.0, 100)  # 100 s, a 0.6 s pause after every word
    segments = split_at_pauses(words, 100.0, 30.0)
    assert len(segments) >= 4
    assert segments[0][0] == 0.0 and segments[-1][1] == 100.0
    kept = [w.word for _, _, ws in segments for w in ws]
    assert kept == [w.word for w in words]  # every word once, in order
    for (start, end, ws), nxt in zip(segments, [*segments[1:], None], strict=True):
        assert end - start <= 30.0
        if nxt is not None:
            assert nxt[0] == end  # contiguous
        for w in ws:  # re-based, inside the segment
            assert 0.0 <= w.start < w.end <= end - start + 1e-9
    # each cut is in the middle of a pause
    for _, end, _ in segments[:-1]:
        assert any(abs(end - (i + 0.4 + 0.3)) < 1e-9 for i in range(100))


def test_split_prefers_the_widest_pause() -> None:
    words = [
        Word("a", 0, 10, 1, False),
        Word("b", 10.1, 17, 1, False),
        Word("c", 19, 25, 1, False),
        Word("d", 25.1, 33, 1, False),
    ]
    segments = split_at_pauses(words, 34.0, 30.0)
    assert [[w.word for w in ws] for _, _, ws in segments] == [["a", "b"], ["c", "d"]]
    assert segments[0][1] == pytest.approx(18.0)


def test_filters_name_their_reason() -> None:
    f = Filters(
        min_duration=0.5,
        max_duration=30,
        max_words_per_second=4,
        min_score=0.5,
        max_gap=3.0,
        max_flagged_fraction=0.25,
    )
    ok = words_every(1.0, 4)
    assert reject_reason(ok, 4.0, f) is None
    assert reject_reason(ok, 0.2, f) == "too_short"
    assert reject_reason(ok, 31.0, f) == "too_long"
    assert reject_reason([], 2.0, f) == "no_words"
    flagged = [Word(w.word, w.start, w.end, w.score, i < 2) for i, w in enumerate(ok)]
    assert reject_reason(flagged, 4.0, f) == "unalignable"
    assert reject_reason(words_every(0.1, 20, 0.05), 2.0, f) == "too_fast"
    low = [Word(w.word, w.start, w.end, 0.1, False) for w in ok]
    assert reject_reason(low, 4.0, f) == "low_score"
    gap = [*ok[:2], Word("late", 9.0, 9.5, 1.0, False)]
    assert reject_reason(gap, 10.0, f) == "long_gap"
    with pytest.raises(ValueError):
        Filters(min_duration=5, max_duration=2)


def test_skipped_stretches_are_left_out() -> None:
    words = [
        Word("a", 0.5, 1.0, 1, False),
        Word("b", 1.2, 1.6, 1, False),
        Word("c", 9.0, 9.5, 1, False),
        Word("d", 9.6, 10.0, 1, False),
    ]
    assert [(i, s, e) for i, s, e in gaps(words, 11.0)][2] == (2, 1.6, 9.0)
    segments = split_at_pauses(words, 11.0, 30.0, skip=[2])
    assert [(s, e, [w.word for w in ws]) for s, e, ws in segments] == [
        (0.0, pytest.approx(1.8), ["a", "b"]),
        (pytest.approx(8.8), 11.0, ["c", "d"]),
    ]
    assert segments[1][2][0].start == pytest.approx(0.2)  # re-based
    # leading and trailing stretches too
    segments = split_at_pauses(words, 11.0, 30.0, skip=[0, 2, 4])
    assert [(round(s, 2), round(e, 2)) for s, e, _ in segments] == [(0.3, 1.8), (8.8, 10.2)]
