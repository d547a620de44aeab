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


def test_a_childs_peak_rss_is_its_own_not_the_runners() -> None:
    """wait4 counts the runner's size at the child's exec (Linux keeps that high-water mark);
    the benchmark reports the child's own VmHWM instead."""
    import json
    import subprocess
    import sys

    from benchmarks.run import _peak, _reap

    ballast = bytearray(400 * 2**20)  # the runner grown, as after generating the inputs
    ballast[::4096] = b"\x01" * len(ballast[::4096])  # touched: resident
    code = (
        "import json\n"
        "status = open('/proc/self/status').read()\n"
        "print(json.dumps({'hwm_mb': int(status.split('VmHWM:')[1].split()[0]) / 1024}))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    own = json.loads(proc.stdout.read())["hwm_mb"]
    proc.stdout.close()
    wait4 = _reap(proc)
    del ballast
    assert wait4 >= 400  # what wait4 alone would report for a tiny child
    assert own < 100
    assert _peak(wait4, own) == own
    assert _peak(wait4, None) == wait4  # no report from the child: wait4's figure
