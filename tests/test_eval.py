"""Evaluation: normalisers, metrics worked by hand, the vrt-eval CLI, the target probe, the card."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from data_prep.shards import UnitShardWriter, write_index
from vrt_finetune import constants as C
from vrt_finetune.evaluate import ModelSpec, main
from vrt_finetune.layout import IGNORE_INDEX, layout_example
from vrt_finetune.metrics import (
    Reference,
    RefWord,
    count_occurrences,
    error_counts,
    glossary_recall,
    latency_summary,
    score,
    word_latencies,
)
from vrt_finetune.model_card import recipe_summary, render_model_card
from vrt_finetune.shard_format import SampleWord, ShardSample, encode_flac
from vrt_finetune.target_probe import CONVENTIONS, ProbeSample, probe_targets
from vrt_finetune.targets import TargetOptions, build_targets
from vrt_finetune.wer_normalizer import TextNormalizer, base_language

NORM = TextNormalizer()


@dataclass
class W:  # a DecodedWord look-alike
    word: str
    emitted_at: float


@dataclass
class D:  # a Decoded look-alike
    text: str
    words: list[W]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- normalisers


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("Hello, World! It's twenty-five dollars.", "en", "hello world it is $25"),
        ("Mr. Smith [noise] um (laughs) went home", "en-US", "mister smith went home"),
        ("Ｈｅｌｌｏ，  WORLD!", "fr", "hello world"),
        ("Die Straße [Lärm] endet.", "de", "die strasse endet"),
        ("नमस्ते दुनिया!", "hi", "नमस्ते दुनिया"),  # vowel signs (marks) stay in their words
        ("你好，世界", "zh-CN", "你 好 世 界"),
        ("l'homme -- «ici»", None, "l homme ici"),
    ],
)
def test_normalizer(text: str, language: str | None, expected: str) -> None:
    assert NORM(text, language) == expected


def test_normalizer_spelling_map_and_language_codes() -> None:
    assert TextNormalizer({"colour": "color"})("The colour", "en") == "the color"
    assert NORM("The colour", "en") == "the colour"
    assert [base_language(x) for x in ("en_US", "EN", "", None)] == ["en", "en", "", ""]


# --------------------------------------------------------------------------- metrics


def test_error_counts_by_hand() -> None:
    # utt 1: "b" → "x" (S), "d" dropped (D); utt 2: "g" added (I): 3 errors / 6 words
    c = error_counts(["a b c d", "e f"], ["a x c", "e f g"])
    assert (c.substitutions, c.deletions, c.insertions, c.ref_len) == (1, 1, 1, 6)
    assert c.rate == 0.5
    # an empty reference adds its hypothesis as insertions
    assert error_counts(["", "a b"], ["x", "a b"]).rate == 0.5
    assert error_counts(["ab"], ["ac"], characters=True).rate == 0.5
    assert error_counts([], []).rate is None


def test_score_by_language_and_character_languages() -> None:
    refs = [
        Reference("The cat sat.", "en"),
        Reference("你好世界", "zh"),
        Reference("Un chat", "fr"),
    ]
    hyps = [D("the cat sat", []), D("你好世间", []), D("un chien", [])]
    out = score(refs, hyps, NORM)
    assert out["by_language"]["en"]["wer"] == 0.0
    assert out["by_language"]["zh"]["wer"] == 0.25  # per character: 1 of 4
    assert out["by_language"]["zh"]["cer"] == 0.25  # no spaces counted
    assert out["by_language"]["fr"]["wer"] == 0.5
    assert out["wer"] == pytest.approx(2 / 9)  # 0 + 1 + 1 errors over 3 + 4 + 2 units
    assert out["glossary"] is None and out["latency"]["n"] == 0


def test_glossary_recall_by_hand() -> None:
    refs = ["the stent and the stent", "no term here", "Stent-graft placed"]
    hyps = ["the stent and the tent", "stent", "stent graft placed"]
    g = glossary_recall(refs, hyps, ["stent", "stent graft"], NORM, ["en"] * 3)
    # utt 1: stent 2 said, 1 written; utt 2: said 0 (extra mentions don't count);
    # utt 3: "stent" 1/1 and "stent graft" 1/1  →  3 hits of 4
    assert (g.hits, g.occurrences, g.recall) == (3, 4, 0.75)
    assert g.per_term == {"stent": [3, 2], "stent graft": [1, 1]}
    assert count_occurrences(["a", "a", "a"], ["a", "a"]) == 1  # non-overlapping


def test_latency_by_hand() -> None:
    ref = [
        RefWord("Hello", 0.5),
        RefWord("big", 0.9, flagged=True),  # interpolated time: not scored
        RefWord("world", 1.2),
        RefWord("again", 2.0),
    ]
    hyp = [W("hello", 1.0), W("big", 1.4), W("word", 1.7), W("again", 2.48)]
    lat = word_latencies(ref, hyp, lambda t: NORM(t, "en"))
    assert lat == pytest.approx([0.5, 0.48])  # "world"/"word" is a substitution
    summary = latency_summary(lat)
    assert summary["mean"] == pytest.approx(0.49) and summary["median"] == pytest.approx(0.49)
    assert summary["p90"] == pytest.approx(0.48 + 0.9 * 0.02)
    # a word the normaliser splits: each unit keeps the word's time
    split = word_latencies(
        [RefWord("don't", 1.0)], [W("do", 1.3), W("not", 1.3)], lambda t: NORM(t, "en")
    )
    assert split == pytest.approx([0.3, 0.3])


def test_model_spec_parse() -> None:
    assert ModelSpec.parse("tuned=/m/base:/m/adapter") == ModelSpec(
        "tuned", "/m/base", "/m/adapter"
    )
    assert ModelSpec.parse("base=org/model") == ModelSpec("base", "org/model", None)
    assert ModelSpec.parse("/runs/x/") == ModelSpec("x", "/runs/x/", None)


# --------------------------------------------------------------------------- target probe


def _probe_samples() -> list[ProbeSample]:
    rng = np.random.default_rng(0)
    # "extraordinarily" ends on frame 1 and takes several tokens, so "fast" (frame 2) overruns it
    words = [("extraordinarily", "fast", "speech"), ("hello", "world")]
    ends = [(0.05, 0.12, 0.9), (0.4, 1.0)]
    return [
        ProbeSample((0.1 * rng.standard_normal(C.seconds_to_samples(1.2))).astype(np.float32), w, e)
        for w, e in zip(words, ends, strict=True)
    ]


class FakeModel(torch.nn.Module):
    """Predicts exactly the next target of one convention: row b of the (only) batch is sample b."""

    def __init__(self, labels: list[np.ndarray], vocab: int, pad: int) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.labels, self.vocab, self.pad = labels, vocab, pad

    def forward(self, input_ids: torch.Tensor, **_) -> SimpleNamespace:
        b, s = input_ids.shape
        logits = torch.zeros(b, s, self.vocab)
        for row in range(b):
            want = np.full(s, self.pad)
            n = min(s, len(self.labels[row]))
            want[:n] = np.where(
                self.labels[row][:n] == IGNORE_INDEX, self.pad, self.labels[row][:n]
            )
            logits[row, torch.arange(s), torch.from_numpy(want)] = 1.0
        return SimpleNamespace(logits=logits)


@pytest.mark.parametrize("truth", [CONVENTIONS[0], TargetOptions(False, "merge", True)])
def test_probe_ranks_the_true_convention_first(tokenizer, truth: TargetOptions) -> None:
    samples = _probe_samples()
    ids = tokenizer.ids
    labels = [
        layout_example(
            build_targets(s.words, s.ends, len(s.audio), tokenizer.encode, ids, truth).stream,
            s.audio,
            bos_id=tokenizer.bos_id,
            pad_id=tokenizer.pad_id,
            n_left_pad_tokens=tokenizer.n_left_pad_tokens,
            delay_ms=480,
        ).labels
        for s in samples
    ]
    fake = FakeModel(labels, tokenizer.vocab_size, tokenizer.pad_id)
    report = probe_targets(fake, tokenizer, samples, [480], batch_size=len(samples))
    assert report.distinguishable == {"leading_space": True, "overrun": True, "eos": True}
    assert report.scores[0].options == truth
    assert report.scores[0].accuracy() == 1.0
    assert all(s.accuracy() < 1.0 for s in report.scores[1:])
    assert len(report.scores) == 8


# --------------------------------------------------------------------------- CLI end to end


def _noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(C.seconds_to_samples(seconds))).astype(np.float32)


def _write_dataset(root, tokenizer) -> None:
    """Three utterances in two test shards, with timed words and targets, like vrt-prep."""
    items = [
        ("u0", ["the", "stent", "is", "in"], [0.2, 0.5, 0.7, 0.9], 1.0),
        ("u1", ["stent", "graft", "placed"], [0.3, 0.6, 1.1], 1.2),
        ("u2", ["hello"], [0.4], 0.6),
    ]
    writer = UnitShardWriter(root, "test", 0, max_samples=2, max_bytes=1 << 30)
    for n, (key, words, ends, seconds) in enumerate(items):
        audio = _noise(seconds, n)
        targets = build_targets(words, ends, len(audio), tokenizer.encode, tokenizer.ids)
        sample = ShardSample(
            key=key,
            text=" ".join(words),
            duration=seconds,
            targets=targets,
            words=tuple(SampleWord(w, e - 0.1, e, 0.9) for w, e in zip(words, ends, strict=True)),
            language="en",
            speaker="spk",
        )
        writer.write(sample, encode_flac(audio))
    write_index(root, writer.close())


@pytest.fixture(scope="module")
def eval_inputs(tmp_path_factory, tokenizer):
    from vrt_finetune.lora import LoraSettings, apply_lora, save_adapter
    from vrt_finetune.testing import make_tiny_model, save_tiny_checkpoint

    root = tmp_path_factory.mktemp("eval")
    base = save_tiny_checkpoint(root / "base", tokenizer)
    adapter = save_adapter(
        apply_lora(make_tiny_model(tokenizer), LoraSettings(rank=2)), root / "ad"
    )
    _write_dataset(root / "data", tokenizer)
    sf.write(root / "g0.wav", _noise(0.8, 7), C.SAMPLE_RATE)
    manifest = root / "general.jsonl"
    manifest.write_text(json.dumps({"audio": "g0.wav", "text": "good morning", "language": "en"}))
    (root / "glossary.txt").write_text("# terms\nstent\nstent graft\n\n")
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"model": {"lora": {"rank": 2}, "optim": {"lr": 1e-4}}}))
    return SimpleNamespace(root=root, base=base, adapter=adapter, manifest=manifest, recipe=recipe)


def test_cli_end_to_end(eval_inputs) -> None:
    x, out = eval_inputs, eval_inputs.root / "out"
    argv = [
        "--model", f"base={x.base}",
        "--model", f"tuned={x.base}:{x.adapter}",
        "--data", str(x.root / "data"),
        "--general", str(x.manifest),
        "--glossary", str(x.root / "glossary.txt"),
        "--delays", "240", "480",
        "--batch_size", "2", "--device", "cpu", "--dtype", "fp32",
        "--out", str(out),
        "--card", "--base_model", "mistralai/Voxtral-Mini-4B-Realtime-2602",
        "--data_card", "data/README.md", "--recipe", str(x.recipe),
    ]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["meta"]["sets"]["domain"]["n_utterances"] == 3
    assert metrics["meta"]["sets"]["general"]["n_utterances"] == 1
    for name in ("base", "tuned"):
        for delay in ("240", "480"):
            r = metrics["models"][name]["domain"][delay]
            assert r["wer"] >= 0 and r["cer"] >= 0 and r["words"]["ref_len"] == 8
            assert 0 <= r["glossary"]["recall"] <= 1 and r["glossary"]["occurrences"] == 3
            assert r["latency"]["n"] == 0 or np.isfinite(r["latency"]["mean"])
            assert metrics["models"][name]["general"][delay]["wer"] >= 0
    assert metrics["models"]["tuned"]["adapter"] == str(x.adapter)
    assert (out / "wer_by_delay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| tuned | 480 |" in (out / "metrics.md").read_text()
    assert len((out / "hypotheses.jsonl").read_text().splitlines()) == 2 * 2 * (3 + 1)
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "peft" and front["language"] == ["en"]
    assert front["model-index"][0]["results"][0]["metrics"][0]["type"] == "wer"
    # a local dataset is named, not given by its absolute path (the card is published)
    assert front["model-index"][0]["results"][0]["dataset"]["name"] == "data"
    assert "`model.lora.rank`" in card


def test_cli_check_targets(eval_inputs, capsys) -> None:
    x, out = eval_inputs, eval_inputs.root / "probe"
    argv = ["--model", f"base={x.base}", "--data", str(x.root / "data"), "--check_targets",
            "--delays", "480", "--dtype", "fp32", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "space=yes overrun=wait eos=no" in capsys.readouterr().out
    ranking = json.loads((out / "target_probe.json").read_text())["base"]["ranking"]
    assert len(ranking) == 8
    for row in ranking:
        assert all(v is None or 0 <= v <= 1 for v in row["accuracy"].values())
        assert row["targets"]["all"] > 0


def test_cli_usage_errors(eval_inputs, capsys) -> None:
    with pytest.raises(SystemExit) as err:
        main(["--data", "x"])
    assert err.value.code == 2
    bad = ["--model", f"b={eval_inputs.base}", "--data", str(eval_inputs.root / "nope*.tar")]
    assert main([*bad, "--out", str(eval_inputs.root / "o2")]) == 1
    assert "matches no file" in capsys.readouterr().err


# --------------------------------------------------------------------------- model card


def _fake_metrics() -> dict:
    def result(wer: float, recall: float | None = None) -> dict:
        per_term = {"stent": {"occurrences": 4, "hits": 3}}
        gloss = {"recall": recall, "occurrences": 4, "hits": 3, "per_term": per_term}
        return {
            "wer": wer,
            "cer": wer / 2,
            "by_language": {"en": {"n_utterances": 2, "wer": wer, "cer": wer / 2}},
            "glossary": gloss if recall is not None else None,
            "latency": {"n": 3, "mean": 0.5, "median": 0.5, "p90": 0.6},
        }

    def model(adapter, dom: tuple, rec: tuple, gen: tuple) -> dict:
        return {
            "adapter": adapter,
            "domain": {"240": result(dom[0], rec[0]), "480": result(dom[1], rec[1])},
            "general": {"240": result(gen[0]), "480": result(gen[1])},
        }

    sets = {
        "sources": ["d"],
        "split": "test",
        "n_utterances": 2,
        "hours": 0.01,
        "languages": ["en"],
    }
    return {
        "meta": {"delays_ms": [240, 480], "sets": {"domain": sets, "general": sets}},
        "models": {
            "base": model(None, (0.3, 0.2), (0.25, 0.5), (0.1, 0.08)),
            "tuned": model("ad", (0.15, 0.1), (0.75, 0.75), (0.12, 0.09)),
        },
    }


def test_model_card_rendering(tmp_path) -> None:
    recipe = {"path": "recipes/med.yaml", "model.lora.rank": 16, "model.optim.lr": 1e-4}
    path = render_model_card(
        tmp_path, _fake_metrics(), base_model="org/base", data_card="d/README.md", recipe=recipe
    )
    text = path.read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["base_model"] == "org/base"
    assert front["pipeline_tag"] == "automatic-speech-recognition"
    assert front["tags"][-1] == "lora"
    results = front["model-index"][0]["results"]
    assert [r["dataset"]["name"] for r in results] == ["d", "general held-out set"]
    assert results[0]["metrics"][0] == {"type": "wer", "value": 15.0, "name": "WER @ 240 ms"}
    assert "75.00 % of 4 glossary-term occurrences" in text and "(50.00 % for base)" in text
    assert "| 480 | 8.00 | 9.00 (+1.00) |" in text  # forgetting: general WER before/after
    assert "| `model.lora.rank` | `16` |" in text and "`recipes/med.yaml`" in text
    png = (tmp_path / "card_wer_by_delay.png").read_bytes()
    assert png[:4] == b"\x89PNG" and "(card_wer_by_delay.png)" in text
    render_model_card(tmp_path, _fake_metrics(), base_model="b", data_card=None, recipe=None)
    assert (tmp_path / "card_wer_by_delay.png").read_bytes() == png  # no time stamps


def test_recipe_summary(tmp_path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("model:\n  lora: {rank: 8, alpha: 16}\n  optim: {lr: 0.0002}\nother: {x: 1}\n")
    assert recipe_summary(f) == {
        "path": str(f), "model.lora.rank": 8, "model.lora.alpha": 16, "model.optim.lr": 0.0002
    }  # fmt: skip
