"""plot.py: a run's metrics and router logs to PNGs (matplotlib optional)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from router import REGIONAL, REGIONS, TOPICS, LanguageRouter
from reward import LANGUAGES


def write_run(run, steps: int = 4, partial_tail: bool = False):
    router = LanguageRouter(LANGUAGES, TOPICS, REGIONS, update_every=2)
    os.makedirs(run, exist_ok=True)
    with open(run / "router.jsonl", "w") as r, open(run / "metrics.jsonl", "w") as m:
        r.write(json.dumps(router.snapshot()) + "\n")
        for s in range(steps):
            router.record(REGIONAL, ["China"], ["zh", "en"], [1.0, 0.0])
            if router.step():
                r.write(json.dumps(router.snapshot()) + "\n")
            m.write(json.dumps({"step": s + 1, "reward": 0.1 * s, "r_lang": 0.5, "r_qual": 0.4,
                                "kl": 0.0, "response_len": 20}) + "\n")
        if partial_tail:                                     # a job killed mid-write
            m.write('{"step": 5, "rew')


def plot(*args):
    return subprocess.run([sys.executable, "plot.py", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_plot_writes_both_pngs_or_names_the_missing_dependency(tmp_path):
    write_run(tmp_path / "run", partial_tail=True)
    proc = plot(tmp_path / "run", "--to", tmp_path / "png")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert proc.returncode != 0 and "pip install matplotlib" in proc.stderr, proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    assert "dropped a half-written last line" in proc.stderr
    assert "4 steps" in proc.stdout and "3 router updates" in proc.stdout
    for name in ("metrics.png", "router.png"):
        assert (tmp_path / "png" / name).stat().st_size > 1000


def test_bad_router_log_names_the_file_and_row(tmp_path):
    from plot import router_rows
    bad = tmp_path / "router.jsonl"
    bad.write_text(json.dumps({"step": 0, "topics": {}, "regions": {}}) + "\n" + json.dumps({"step": 4}) + "\n")
    with pytest.raises(ValueError, match=r"router.jsonl: row 2: field 'topics'"):
        router_rows(str(bad))
    bad.write_text('{"step": 1}\n{oops}\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"router.jsonl:2: not valid JSON"):
        router_rows(str(bad))
