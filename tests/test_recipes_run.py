"""Every shipped data recipe runs as written, up to where it needs the network or a GPU.

Each recipe is loaded from its file and run by ``vrt-prep`` with only what this machine cannot
have replaced: the hub tokenizer by a local model directory, the hub aligner by a tiny random
CTC model directory, the GPU by the CPU, and the recipe's example data path by a small corpus
made here in the layout the recipe describes. What a recipe names as written and cannot reach
offline (the hub tokenizer) fails with a message that says how to pass a local copy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from data_prep.align.testing import save_random_wav2vec2_ctc
from data_prep.cli import run
from data_prep.config import load_config
from data_prep.espeak_worker import espeak_available
from data_prep.synth import synthesize
from vrt_finetune.testing import save_tiny_checkpoint
from vrt_finetune.tokenizer import TokenizerError, open_tokenizer

RECIPES = Path(__file__).parent.parent / "recipes" / "data"
SENTENCES = [
    "the patient reports mild chest pain today",
    "blood pressure was normal after the dose",
    "she was given amoxicillin for the infection",
    "we will repeat the scan in two weeks",
]

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer) -> Path:
    """A local Hugging Face-format model directory with its tekken.json (the hub model's
    stand-in)."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "voxtral-tiny", tokenizer)


@pytest.fixture(scope="module")
def ctc_dir(tmp_path_factory) -> Path:
    return save_random_wav2vec2_ctc(tmp_path_factory.mktemp("ctc") / "wav2vec2-tiny")


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> list[tuple[Path, str]]:
    d = tmp_path_factory.mktemp("speech")
    out = []
    for i, text in enumerate(SENTENCES):
        sf.write(d / f"utt{i}.wav", synthesize(text).audio, 16000)
        out.append((d / f"utt{i}.wav", text))
    return out


def _common(tmp_path: Path, model_dir: Path) -> list[str]:
    return [f"output={tmp_path / 'out'}", f"tokenizer={model_dir}", "workers=1"]


def _check(summary: dict | None, n_items: int) -> None:
    assert summary is not None
    assert summary["items"] == n_items
    assert summary["kept_samples"] + summary["rejected"] >= 1
    assert summary["kept_samples"] >= 1, summary["rejects_by_reason"]


def test_each_data_recipe_is_covered() -> None:
    assert {p.name for p in RECIPES.glob("*.yaml")} == {
        "common_voice_hf.yaml",
        "fleurs_hf.yaml",
        "librispeech_hf.yaml",
        "long_audio_hf.yaml",
        "medical_manifest.yaml",
        "new_language_hf.yaml",
        "synthetic_demo.yaml",
        "synthetic_spanish.yaml",
    }, "a new data recipe needs a run test here"


def test_the_hub_tokenizer_as_written_says_how_to_go_offline() -> None:
    config = load_config(RECIPES / "medical_manifest.yaml")
    with pytest.raises(TokenizerError, match=r"--local-dir DIR"):
        open_tokenizer(config.tokenizer)


def test_medical_manifest(tmp_path, model_dir, ctc_dir, speech) -> None:
    manifest = tmp_path / "dictations" / "manifest.jsonl"
    manifest.parent.mkdir()
    rows = [
        {"audio": str(path), "text": text, "speaker": f"dr{i % 2}"}
        for i, (path, text) in enumerate(speech)
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = load_config(
        RECIPES / "medical_manifest.yaml",
        [
            *_common(tmp_path, model_dir),
            f"source.path={manifest}",
            f"aligner.model={ctc_dir}",  # the hub's English wav2vec2 needs the network
            "aligner.device=cpu",
            "filters.max_flagged_fraction=1.0",  # random weights: words get interpolated
            "filters.max_words_per_second=8.0",
        ],
    )
    assert config.glossary == "recipes/data/medical_glossary.txt"
    config.glossary = str(RECIPES / "medical_glossary.txt")  # the recipe's path is repo-relative
    _check(run(config, progress=False), len(rows))
    assert "Glossary" in (tmp_path / "out" / "README.md").read_text()


def test_new_language_hf(tmp_path, model_dir, ctc_dir, speech) -> None:
    from datasets import Audio, Dataset

    ds = Dataset.from_dict(
        {
            "audio": [str(p) for p, _ in speech],
            "sentence": [t for _, t in speech],
            "client_id": [f"c{i % 2}" for i in range(len(speech))],
        }
    ).cast_column("audio", Audio(sampling_rate=16000))
    ds.save_to_disk(str(tmp_path / "cv_sw"))
    config = load_config(
        RECIPES / "new_language_hf.yaml",
        [
            *_common(tmp_path, model_dir),
            f"source.path={tmp_path / 'cv_sw'}",
            f"aligner.model={ctc_dir}",  # torchaudio's MMS_FA bundle needs the network
            "aligner.device=cpu",
            "filters.min_score=0.0",  # random weights score nothing
            "filters.max_flagged_fraction=1.0",
        ],
    )
    _check(run(config, progress=False), len(speech))


HUB_RECIPES = {
    "common_voice_hf.yaml": "mozilla-foundation/common_voice_17_0",
    "fleurs_hf.yaml": "google/fleurs",
    "librispeech_hf.yaml": "openslr/librispeech_asr",
}


@pytest.mark.parametrize("recipe", sorted(HUB_RECIPES))
def test_a_hub_dataset_as_written_says_how_to_go_offline(recipe: str) -> None:
    from data_prep.errors import SourceError
    from data_prep.hf_source import HfUnits

    config = load_config(RECIPES / recipe)
    assert config.source.path == HUB_RECIPES[recipe] and config.source.streaming
    with pytest.raises(SourceError, match=r"--source\.path=DIR") as err:
        HfUnits(config.source, config.shards.items_per_unit)
    assert HUB_RECIPES[recipe] in str(err.value) and "hf download" in str(err.value)


def _parquet_in_layout(path: Path, columns: dict[str, list]) -> None:
    """Rows in a hub dataset's layout, written as Parquet with the audio bytes embedded."""
    from datasets import Audio, Dataset

    Dataset.from_dict(columns).cast_column("audio", Audio()).to_parquet(str(path))


@pytest.mark.parametrize(
    "recipe", ["common_voice_hf.yaml", "fleurs_hf.yaml", "librispeech_hf.yaml"]
)
def test_hub_recipes_on_a_local_copy(recipe, tmp_path, model_dir, ctc_dir, speech) -> None:
    audio = [{"bytes": p.read_bytes(), "path": p.name} for p, _ in speech]
    texts = [t for _, t in speech]
    layout = {
        "common_voice_hf.yaml": {
            "client_id": [f"c{i % 2}" for i in range(len(speech))],
            "path": [p.name for p, _ in speech],
            "sentence": texts,
            "locale": ["sw"] * len(speech),
        },
        "fleurs_hf.yaml": {"id": list(range(len(speech))), "transcription": texts}
        | {"raw_transcription": texts},
        "librispeech_hf.yaml": {"text": [t.upper() for t in texts]}
        | {"speaker_id": [i % 2 for i in range(len(speech))], "chapter_id": [1] * len(speech)},
    }[recipe]
    (tmp_path / "copy").mkdir()
    _parquet_in_layout(
        tmp_path / "copy" / "train-00000-of-00001.parquet", {"audio": audio} | layout
    )
    config = load_config(
        RECIPES / recipe,
        [
            *_common(tmp_path, model_dir),
            f"source.path={tmp_path / 'copy'}",
            "source.config_name=null",
            "source.split=train",
            f"aligner.model={ctc_dir}",  # the hub's aligner models need the network
            "aligner.device=cpu",
            "filters.min_score=0.0",  # random weights score nothing
            "filters.max_flagged_fraction=1.0",
            "filters.max_words_per_second=8.0",
        ],
    )
    _check(run(config, progress=False), len(speech))


def test_long_audio_hf(tmp_path, model_dir, ctc_dir, speech) -> None:
    """One recording of the four sentences with a segment list, as whisperX writes it."""
    import numpy as np

    pieces = [sf.read(p, dtype="float32")[0] for p, _ in speech]
    sf.write(tmp_path / "lecture.wav", np.concatenate(pieces), 16000)
    segments, at = [], 0.0
    for piece, (_, text) in zip(pieces, speech, strict=True):
        segments.append({"start": at, "end": at + len(piece) / 16000, "text": text})
        at += len(piece) / 16000
    (tmp_path / "lectures").mkdir()
    _parquet_in_layout(
        tmp_path / "lectures" / "train-00000-of-00001.parquet",
        {
            "audio": [{"bytes": (tmp_path / "lecture.wav").read_bytes(), "path": "lecture.wav"}],
            "text": [" ".join(t for _, t in speech)],
            "segments": [segments],
        },
    )
    config = load_config(
        RECIPES / "long_audio_hf.yaml",
        [
            *_common(tmp_path, model_dir),
            f"source.path={tmp_path / 'lectures'}",
            f"aligner.model={ctc_dir}",
            "aligner.device=cpu",
            "filters.max_flagged_fraction=1.0",
            "filters.max_words_per_second=8.0",
        ],
    )
    _check(run(config, progress=False), len(speech))


def test_synthetic_demo(tmp_path, model_dir) -> None:
    config = load_config(
        RECIPES / "synthetic_demo.yaml",
        [*_common(tmp_path, model_dir), "source.n_general=6", "source.n_medical=2"],
    )
    _check(run(config, progress=False), 8)


def test_synthetic_spanish(tmp_path, model_dir) -> None:
    """The language demo's recipe as written: Spanish, three voices, every voice in every split."""
    config = load_config(
        RECIPES / "synthetic_spanish.yaml", [*_common(tmp_path, model_dir), "source.n_general=6"]
    )
    assert config.source.language == "es" and len(config.source.voices or []) == 3
    _check(run(config, progress=False), 6)
