"""The inspection page: one self-contained file, deterministic and bounded; rendered by chromium.

The browser test loads the page in headless chromium (Debian's, installed by ``make setup``),
waits until wavesurfer has decoded the sample's audio and drawn its word regions, then reads the
DOM: the word spans carry the stored times and the target strip the stored ``[P]``/``[W]``
stream. Its screenshot is kept in pytest's base temp directory (``inspect_page.png``).
"""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from headless_chromium import CHROMIUM, Chromium
from PIL import Image
from shard_factory import make_dataset

from data_prep import inspect_page
from data_prep.espeak_worker import espeak_available
from data_prep.inspect_page import PageAssetError, write_inspection_page
from vrt_finetune.shard_format import INDEX_FILE, ShardFormatError

pytestmark = pytest.mark.skipif(not espeak_available(), reason="libespeak-ng not installed")

READY = "document.getElementById('detail').dataset.ready"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tokenizer) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("inspect") / "ds"
    return root, make_dataset(root, tokenizer)


class _Spans(HTMLParser):
    """Attributes of every element with ``data-*`` attributes, by its first class."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, list[dict[str, str]]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "class" in a and any(k.startswith("data-") for k in a):
            self.found.setdefault(a["class"].split()[0], []).append(a)


def _page_data(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="vrt-data">(.*?)</script>', text, re.S)
    assert block is not None
    return json.loads(block.group(1))


def test_page_is_one_bounded_deterministic_file(dataset, tmp_path: Path) -> None:
    root, _written = dataset
    page = write_inspection_page(root, tmp_path / "a.html", per_split=2, seed=3)
    text = page.read_text(encoding="utf-8")
    assert "WaveSurfer.Regions" in text and not re.search(r"<script[^>]+src=", text)
    data = _page_data(page)
    again = _page_data(write_inspection_page(root, tmp_path / "b.html", per_split=2, seed=3))
    # the same samples with the same contents (an Ogg stream's serial number is random)
    strip = [
        {k: v for k, v in s.items() if k != "audio"} for sp in data["splits"] for s in sp["samples"]
    ]
    assert strip == [
        {k: v for k, v in s.items() if k != "audio"}
        for sp in again["splits"]
        for s in sp["samples"]
    ]
    assert [len(s["samples"]) for s in data["splits"]] == [2, 2]
    assert [s["total"] for s in data["splits"]] == [3, 2]
    assert {r["reason"] for r in data["rejects"]} == {"too_short", "no_timestamps"}
    # an audio budget of 3 s holds one sample of ~2-3 s: the rest are listed without audio
    small = _page_data(write_inspection_page(root, tmp_path / "c.html", max_audio_seconds=3.0))
    with_audio = [s for split in small["splits"] for s in split["samples"] if s["audio"]]
    assert len(with_audio) == 1 and with_audio[0]["audio"].startswith("data:audio/")
    assert (tmp_path / "c.html").stat().st_size < page.stat().st_size + 250_000


def test_empty_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ShardFormatError, match=r"no index\.json"):
        write_inspection_page(tmp_path)
    (tmp_path / INDEX_FILE).write_text(json.dumps({"shards": [], "splits": {}}))
    with pytest.raises(ShardFormatError, match="holds no shards"):
        write_inspection_page(tmp_path)


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_damaged_asset_is_a_clear_error(dataset, tmp_path: Path, monkeypatch, damage) -> None:
    root, _ = dataset
    assets = tmp_path / "assets"
    shutil.copytree(Path(inspect_page.__file__).parent / "assets", assets)
    target = assets / "wavesurfer.regions.min.js"
    if damage == "missing":
        target.unlink()
    else:
        target.write_text("<html>not a script</html>")
    monkeypatch.setattr(inspect_page.resources, "files", lambda package: assets)
    with pytest.raises(PageAssetError, match=r"wavesurfer\.regions\.min\.js.*reinstall"):
        write_inspection_page(root, tmp_path / "page.html")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make setup installs it)")
def test_page_renders_in_chromium(dataset, tmp_path_factory) -> None:
    root, written = dataset
    page = write_inspection_page(root)
    sample = written["train"][0]  # the page opens on the first sample of the first split
    browser = Chromium()
    try:
        dom = browser.open(page, READY)
        shot = browser.screenshot(tmp_path_factory.getbasetemp() / "inspect_page.png")
        browser.call(
            "Runtime.evaluate",
            expression="const d = document.getElementById('delay'); d.value = '2400';"
            " d.dispatchEvent(new Event('change'));",
        )
        after = browser.call(
            "Runtime.evaluate",
            expression="document.getElementById('target-strip').dataset.delayMs",
            returnByValue=True,
        )["result"]["value"]
    finally:
        browser.close()
    detail = re.search(r'<section id="detail"([^>]*)>', dom).group(1)
    assert f'data-key="{sample.key}"' in detail and 'data-ready="1"' in detail
    assert f'data-regions="{len(sample.words)}"' in detail  # wavesurfer drew every word
    parsed = _Spans()
    parsed.feed(dom)
    words = parsed.found["word"]
    assert [w["data-word"] for w in words] == [w.word for w in sample.words]
    assert [float(w["data-start"]) for w in words] == [w.start for w in sample.words]
    assert [float(w["data-end"]) for w in words] == [w.end for w in sample.words]
    assert [w["data-flagged"] == "true" for w in words] == [w.flagged for w in sample.words]
    tokens = parsed.found["tok"]
    assert [int(t["data-id"]) for t in tokens] == list(sample.targets.stream)
    assert [int(t["data-frame"]) for t in tokens if t["data-kind"] == "W"] == [
        g.start for g in sample.targets.groups
    ]
    assert after == "2400"
    image = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert image.shape[0] > 600 and image.std() > 20  # a drawn page, not a blank one
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 200  # waveform, spectrogram, text
    print(f"\nscreenshot: {shot}")
