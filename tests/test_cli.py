"""The four console scripts answer --help (their entry points exist and import)."""

import pytest

from data_prep.cli import main as prep_main
from vrt_finetune import cli


@pytest.mark.parametrize(
    "entry", [prep_main, cli.train_main, cli.eval_main, cli.export_main], ids=lambda f: f.__name__
)
def test_help(entry, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.argv", ["prog", "--help"])
    with pytest.raises(SystemExit) as exc:
        entry()
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out.lower()
