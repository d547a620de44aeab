"""The benchmark's command line (parsing only: nothing is built or measured here)."""

from __future__ import annotations

import pytest

from benchmarks.contenders import OPTIONS, make_contender
from benchmarks.run import CONTENDERS, _parser


def test_an_unknown_contender_is_refused_before_anything_is_built(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(["--contenders", "ours", "ours+int9"])
    assert exit_.value.code == 2
    assert "ours+int9" in capsys.readouterr().err


def test_every_known_contender_is_accepted() -> None:
    args = _parser().parse_args(["--contenders", *CONTENDERS, "--settle", "0"])
    assert args.contenders == list(CONTENDERS) and args.settle == 0.0
    assert set(OPTIONS) <= set(CONTENDERS)
    for name in CONTENDERS:  # each is a name make_contender knows (setup is not called)
        assert make_contender(name, None, "text", True).name  # type: ignore[arg-type]
