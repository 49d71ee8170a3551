"""Synthetic speech beyond English: Spanish and Russian sentences, several espeak-ng voices."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from data_prep.card import HIGH_FERTILITY
from data_prep.cli import run as prep_run
from data_prep.config import SourceConfig, load_config
from data_prep.errors import SourceError
from data_prep.espeak_worker import espeak_available
from data_prep.sentences import sentence_corpus
from data_prep.sources import SourceItem, synthetic_items
from data_prep.synth import SynthUtterance, synthesize
from data_prep.unit_processor import split_of
from data_prep.voices import SynthVoice, assign_voices
from vrt_finetune.testing import make_test_tokenizer

needs_espeak = pytest.mark.skipif(not espeak_available(), reason="libespeak-ng not installed")

LANGUAGES = ("es", "ru")
VOICE = {"es": "es", "ru": "ru"}
# Sentences with the number forms the corpus writes; each token must get its own measured time.
NUMBER_SENTENCES = {
    "es": [
        "Mi prima compró 12,5 kg de queso.",
        "Las ventas subieron un 23% el año pasado.",
        "La boda es el 15 de marzo a las 19:45.",
        "El jarrón azul cuesta 2.500 euros.",
        "¿Está la cámara delante del puerto?",
    ],
    # Cyrillic: espeak-ng's text positions count characters, not UTF-8 bytes (two per letter).
    "ru": [
        "Мой брат отправил 24 стакана вечером.",
        "Цены выросли на 37 процентов за год.",
        "Концерт начнётся 15 марта в 19:45.",
        "Бабушка продала сухую полку за 350 рублей.",
        "Маленький стакан всё ещё в магазине?",
    ],
}


def _check_times(u: SynthUtterance) -> None:
    """Every token timed, in order, inside the audio, at a plausible length and pace."""
    assert [w.word for w in u.words] == u.text.split()
    assert u.approximate == ()
    previous_end = 0.0
    for w in u.words:
        assert previous_end <= w.start < w.end <= u.duration, w
        assert 0.03 <= w.end - w.start <= 2.0, w
        previous_end = w.end
    assert 1.0 <= len(u.words) / u.duration <= 6.0  # words per second


# --- sentences ----------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_corpus_is_deterministic_grammatical_in_shape_and_varied(language: str) -> None:
    corpus = sentence_corpus(2400, 0, "general", language)
    assert corpus == sentence_corpus(2400, 0, "general", language)
    for s in corpus:
        assert 4 <= len(s.split()) <= 12, s
        assert next(ch for ch in s if ch.isalpha()).isupper() and s[-1] in ".?", s
    words = {w.strip(".,?¿").lower() for s in corpus for w in s.split()}
    letters = {w for w in words if w.isalpha()}
    assert len(letters) >= 300, len(letters)
    assert sum(any(ch.isdigit() for ch in s) for s in corpus) >= 0.2 * len(corpus)
    # Sentences of another seed are new combinations, not the training sentences again.
    seen = set(corpus)
    held_out = sentence_corpus(300, 1, "general", language)
    assert sum(s in seen for s in held_out) <= 15


def test_basic_spanish_is_the_size_of_the_english_sentences() -> None:
    """``basic``: under 100 words and no digits, like the English general sentences (what a tiny
    model learns in minutes); English ``basic`` is its general corpus."""
    corpus = sentence_corpus(2400, 0, "basic", "es")
    words = {w.strip(".,?¿").lower() for s in corpus for w in s.split()}
    assert 50 <= len(words) < 100 and all(w.isalpha() for w in words), sorted(words)
    assert len(set(corpus)) > 1500 and corpus == sentence_corpus(2400, 0, "basic", "es")
    assert sentence_corpus(50, 3, "basic", "en") == sentence_corpus(50, 3, "general", "en")


def test_corpus_language_errors() -> None:
    with pytest.raises(ValueError, match="language"):
        sentence_corpus(3, 0, "general", "de")
    with pytest.raises(ValueError, match="English only"):
        sentence_corpus(3, 0, "medical", "es")


# --- synthesis ----------------------------------------------------------------------------------


@needs_espeak
@pytest.mark.parametrize("language", LANGUAGES)
def test_sentences_are_timed_exactly(language: str) -> None:
    corpus = sentence_corpus(4, 3, "general", language)
    for text in corpus + NUMBER_SENTENCES[language]:
        _check_times(synthesize(text, voice=VOICE[language]))


@needs_espeak
@pytest.mark.parametrize(
    ("language", "text", "number", "word"),
    [
        # "dos mil quinientos", "триста пятьдесят": one token timed over all of its words.
        ("es", "El jarrón cuesta 2.500 euros.", "2.500", "cuesta"),
        ("ru", "Мама купила лампу за 350 рублей.", "350", "лампу"),
    ],
)
def test_number_spoken_as_several_words_is_one_longer_token(
    language: str, text: str, number: str, word: str
) -> None:
    u = synthesize(text, voice=VOICE[language])
    _check_times(u)
    length = {w.word: w.end - w.start for w in u.words}
    assert length[number] > 1.5 * length[word]


# --- voices -------------------------------------------------------------------------------------

VOICES = [SynthVoice("es"), SynthVoice("es", "f3", pitch=60), SynthVoice("es-419", rate=170)]


def test_voice_ids_and_espeak_names() -> None:
    assert [v.id for v in VOICES] == ["es", "es+f3_p60", "es-419_r170"]
    assert VOICES[1].espeak_name == "es+f3"
    assert VOICES[2].rate_for(7) == 170
    assert [VOICES[0].rate_for(i) for i in range(6)] == [150, 160, 170, 180, 190, 150]


def test_voice_assignment_is_deterministic_and_prefix_stable() -> None:
    chosen = assign_voices(300, VOICES, seed=5)
    assert chosen == assign_voices(300, VOICES, seed=5)
    assert chosen[:100] == assign_voices(100, VOICES, seed=5)
    assert chosen != assign_voices(300, VOICES, seed=6)
    counts = [sum(v is w for v in chosen) for w in VOICES]
    assert min(counts) >= 70  # each voice gets about a third


@pytest.mark.parametrize(
    ("voices", "message"),
    [([], "at least one"), ([SynthVoice("es"), SynthVoice("es")], "must differ")],
)
def test_voice_lists_refused(voices: list[SynthVoice], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        assign_voices(3, voices, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "es+f3"}, "variant"),
        ({"name": "es", "pitch": 101}, "pitch"),
        ({"name": "es", "rate": 50}, "rate"),
    ],
)
def test_bad_voice_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SynthVoice(**kwargs)


@needs_espeak
def test_items_carry_language_voice_and_speaker() -> None:
    items = list(synthetic_items(6, seed=2, voices=VOICES, language="es"))
    chosen = assign_voices(6, VOICES, 2)
    assert [i.speaker for i in items] == [v.id for v in chosen]
    assert all(i.language == "es" and i.words for i in items)
    assert [i.text for i in items] == sentence_corpus(6, 2, "general", "es")
    assert items[0].source == f"espeak-ng:{chosen[0].id}:general[0]"
    # The same sentence in two voices sounds different: the voice reaches espeak-ng.
    first = sentence_corpus(1, 2, "general", "es")[0]
    a = synthesize(first, voice="es", rate_wpm=150)
    b = synthesize(first, voice="es+f3", rate_wpm=150, pitch=60)
    assert len(a.audio) != len(b.audio) or not np.array_equal(a.audio, b.audio)


@needs_espeak
def test_variant_on_a_language_voice_and_unknown_variants() -> None:
    # "en-gb" is found by language, not by file name: the variant must still apply.
    plain, male = synthesize("Go now.", voice="en-gb"), synthesize("Go now.", voice="en-gb+m3")
    assert len(plain.audio) != len(male.audio) or not np.array_equal(plain.audio, male.audio)
    with pytest.raises(ValueError, match="no voice variant 'nosuch'"):
        synthesize("Go now.", voice="es+nosuch")  # espeak-ng alone would ignore it
    with pytest.raises(SourceError, match=r"source\.voices: voice es\+nosuch"):
        next(synthetic_items(2, voices=[SynthVoice("es", "nosuch")], language="es"))


@needs_espeak
def test_default_voice_leaves_the_speaker_unknown() -> None:
    (item,) = synthetic_items(1, seed=0)
    assert (item.speaker, item.language, item.source) == (None, "en", "espeak-ng:en-us:general[0]")


def test_medical_sentences_in_another_language_fail_before_synthesis() -> None:
    with pytest.raises(ValueError, match="English only"):
        next(synthetic_items(0, n_medical=2, language="es"))


# --- recipe -------------------------------------------------------------------------------------


def test_recipe_voices_language_and_split_by() -> None:
    voices = [{"name": "es"}, {"name": "es", "variant": "f3", "pitch": 60}]
    config = load_config(
        None,
        [
            "output=/tmp/x",
            "tokenizer=/tmp/t",
            "source.kind=synthetic",
            "source.language=es",
            f"source.voices={json.dumps(voices)}",
            "shards.split_by=key",
        ],
    )
    assert config.source.voices == [SynthVoice("es"), SynthVoice("es", "f3", pitch=60)]
    assert config.shards.split_by == "key"
    built = SourceConfig(kind="synthetic", language="es", voices=voices)
    assert built.voices == config.source.voices
    assert [v.language for v in [SynthVoice("es-419"), SynthVoice("roa/es")]] == ["es", "es"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"language": "es", "n_medical": 10}, "English only"),
        ({"language": "de"}, "source.language"),
        ({"language": "ru", "vocabulary": "basic"}, "English or Spanish"),
        ({"voices": []}, "at least one"),
        ({"voices": [{"name": "en-us"}, {"name": "en-us"}]}, "must differ"),
        ({"language": "es", "voices": [{"name": "es"}, {"name": "en-gb"}]}, "do not speak"),
    ],
)
def test_recipe_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SourceConfig(kind="synthetic", **kwargs)


def test_split_by_key_ignores_the_speaker() -> None:
    items = [SourceItem(f"k{i}", None, "x", "es", "s", speaker="es+f3") for i in range(200)]
    by_speaker = {split_of(i, 0.2, 0.2) for i in items}
    by_key = {split_of(i, 0.2, 0.2, "key") for i in items}
    assert len(by_speaker) == 1  # one speaker: all in one split
    assert by_key == {"train", "valid", "test"}


# --- the dataset card ---------------------------------------------------------------------------


@needs_espeak
@pytest.mark.parametrize(("language", "verdict"), [("ru", "HIGH"), ("en", "normal")])
def test_card_flags_the_fertility_of_russian(tmp_path: Path, language: str, verdict: str) -> None:
    # The demo's capped tokenizer (4096 ids) keeps few Cyrillic merges: ~4.2 tokens per Russian
    # word against ~1.8 per English one (Spanish ~2.6), measured on 200 sentences each.
    tokenizer = make_test_tokenizer(tmp_path / "tok", vocab_size=4096, n_left_pad_tokens=8)
    overrides = {
        "output": str(tmp_path / "out"),
        "tokenizer": str(tokenizer.path),
        "source.kind": "synthetic",
        "source.language": language,
        "source.n_general": 12,
        "aligner.backend": "given",
        "shards.items_per_unit": 12,
    }
    config = load_config(None, [f"{k}={json.dumps(v)}" for k, v in overrides.items()])
    summary = prep_run(config, progress=False)
    assert summary is not None and summary["kept_samples"] == 12
    card = (tmp_path / "out" / "README.md").read_text()
    fertility = re.search(r"([\d.]+) text tokens per word \((\w+)", card)
    assert fertility is not None and fertility[2] == verdict, fertility
    assert (float(fertility[1]) > HIGH_FERTILITY) == (verdict == "HIGH")


@needs_espeak
def test_card_says_how_splits_were_made(tmp_path: Path) -> None:
    tokenizer = make_test_tokenizer(tmp_path / "tok", vocab_size=4096, n_left_pad_tokens=8)
    voices = [{"name": "es"}, {"name": "es", "variant": "m3"}]
    overrides = {
        "output": str(tmp_path / "out"),
        "tokenizer": str(tokenizer.path),
        "source.kind": "synthetic",
        "source.language": "es",
        "source.n_general": 4,
        "source.voices": voices,
        "aligner.backend": "given",
        "shards.split_by": "key",
    }
    config = load_config(None, [f"{k}={json.dumps(v)}" for k, v in overrides.items()])
    prep_run(config, progress=False)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "- Speakers: 2 (samples are split by key, speakers ignored" in card
    # The saved recipe (what `vrt-prep merge` reads) keeps the voices.
    saved = load_config(tmp_path / "out" / "prep_config.yaml")
    assert saved.source.voices == [SynthVoice("es"), SynthVoice("es", "m3")]
