"""PocketSphinx aligner: word boundaries on espeak-ng speech, whose word times are exact.

Measured on this suite's 40 sentences (250 timed words, general + medical vocabulary, en-us
voice at 160 wpm): mean boundary error 20 ms (start) / 22 ms (end), median 10 ms / 10 ms,
89 % / 90 % within 50 ms. The bounds below leave a little room over those figures.
"""

from __future__ import annotations

import numpy as np
import pytest

from data_prep.align.arpabet import arpabet, ipa_to_arpabet
from data_prep.align.base import AlignmentError, AlignRequest
from data_prep.align.factory import make_aligner
from data_prep.align.given import GivenFirst
from data_prep.config import AlignerConfig
from data_prep.espeak_worker import espeak_available
from data_prep.sentences import sentence_corpus
from data_prep.synth import synthesize

pytest.importorskip("pocketsphinx")
pytestmark = pytest.mark.skipif(not espeak_available(), reason="libespeak-ng not installed")

from data_prep.align.pocketsphinx_backend import PocketSphinxAligner  # noqa: E402

OOV = "choledocholithiasis"
"""A medical term the CMU dictionary lacks."""


@pytest.fixture(scope="module")
def aligner() -> PocketSphinxAligner:
    return PocketSphinxAligner()


def _spoken(token: str) -> str:
    return token.strip(".,?!")


TACHYCARDIA = ("T", "AE", "K", "IH", "K", "AA", "R", "D", "IY", "AH")


def test_ipa_maps_to_arpabet() -> None:
    assert ipa_to_arpabet("t_ˌæ_k_ɪ_k_ˈɑːɹ_d_iə") == list(TACHYCARDIA)
    assert ipa_to_arpabet("dʒ_ˈʌ_dʒ") == ["JH", "AH", "JH"]
    assert ipa_to_arpabet("ˈaʊ_t") == ["AW", "T"]
    assert arpabet("tachycardia") == TACHYCARDIA


def test_boundary_error_on_espeak_speech(aligner: PocketSphinxAligner) -> None:
    texts = sentence_corpus(20, 1, "general") + sentence_corpus(20, 1, "medical")
    starts, ends = [], []
    for text in texts:
        utt = synthesize(text)
        words = [_spoken(w.word) for w in utt.words]
        out = aligner.align(AlignRequest(utt.audio, words, "en"))
        assert [w.word for w in out] == words
        for k, (got, true) in enumerate(zip(out, utt.words, strict=True)):
            if k not in utt.approximate:  # espeak-ng's own time for these is a share-out
                starts.append(got.start - true.start)
                ends.append(got.end - true.end)
    err = np.abs(np.array([starts, ends]))
    mean, median = err.mean(axis=1), np.median(err, axis=1)
    within = {ms: (err <= ms / 1000).mean(axis=1) for ms in (20, 50, 100)}
    print(f"\n{err.shape[1]} words; mean start/end {mean * 1000} ms, median {median * 1000} ms")
    print({ms: share.round(3).tolist() for ms, share in within.items()})
    assert err.shape[1] >= 200
    assert (mean < 0.030).all(), mean
    assert (median < 0.020).all(), median
    assert (within[50] > 0.85).all(), within[50]


def test_word_outside_the_dictionary_is_aligned(aligner: PocketSphinxAligner) -> None:
    utt = synthesize(f"The scan showed {OOV} this morning.")
    words = [_spoken(w.word) for w in utt.words]
    out = aligner.align(AlignRequest(utt.audio, words, "en"))
    assert OOV in aligner.added
    term = out[3]
    assert term.word == OOV and not term.flagged
    assert abs(term.start - utt.words[3].start) < 0.1
    assert abs(term.end - utt.words[3].end) < 0.1
    # a token with no letters has no pronunciation: it gets its neighbours' gap, flagged
    out = aligner.align(AlignRequest(utt.audio, [*words[:3], "--", *words[3:]], "en"))
    assert out[3].word == "--" and out[3].flagged and out[3].score == 0
    assert out[2].end <= out[3].start <= out[3].end <= out[4].start
    assert not any(w.flagged for i, w in enumerate(out) if i != 3)


def test_refuses_other_languages_and_silence(aligner: PocketSphinxAligner) -> None:
    request = AlignRequest(np.zeros(16000, np.float32), ["bonjour"], "fr")
    assert aligner.refusal(request).reason == "unsupported_language"
    with pytest.raises(AlignmentError, match="too_short"):
        aligner.align(AlignRequest(np.zeros(100, np.float32), ["hello"], "en"))


def test_registered_as_a_backend() -> None:
    built = make_aligner(AlignerConfig(backend="pocketsphinx"))
    assert isinstance(built, GivenFirst)
    assert isinstance(built.aligner, PocketSphinxAligner) and built.name == "pocketsphinx"
