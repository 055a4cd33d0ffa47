"""plot.py: a run's logs to PNGs (matplotlib optional) and rollouts.jsonl as text (no matplotlib).

Synthetic logs in the format lrpo.py writes. The figure tests skip without matplotlib; the hint,
the text and the error tests run either way, with matplotlib hidden where it matters.
"""
import json
import os
import subprocess
import sys
import unicodedata

import pytest

from conftest import ROOT

LANGUAGES = "ar de en es fr id it ja ko nl pl pt ru vi zh".split()      # the router's 15, in its order
UPDATE_STATS = ("loss", "grad_norm", "tokens", "ratio", "ratio_min", "ratio_max", "clip_frac", "clip_low_frac",
                "clip_high_frac", "dual_clip_frac", "kl", "approx_kl")


def snapshot(step: int, zh: float) -> dict:
    """A router.snapshot() line: Regional Knowledge and China give zh probability `zh`, Reasoning stays uniform."""
    moved = {l: zh if l == "zh" else (1 - zh) / 14 for l in LANGUAGES}
    return {"step": step, "tau": 1.0, "eps": 0.2, "topics": {"Regional Knowledge": moved,
            "Reasoning": dict.fromkeys(LANGUAGES, 1 / 15)}, "regions": {"China": moved}}


def metrics_row(s: int, new: bool = True, updates: int = 2) -> dict:
    """Step s; new: with the diagnostics (ja has rollouts on even steps only, validation on even steps);
    old: the batch means and M x E = 1 "updates" of a log from before them."""
    row = {"step": s, "reward": 0.1 * s, "r_lang": 0.5, "r_qual": 0.4, "kl": 0.0, "response_len": 20,
           "updates": {k: [0.01 * s + 0.001 * i for i in range(updates)] for k in UPDATE_STATS}}
    if not new:
        return row
    langs = {"de": {"n": 4, "share": 0.5, "reward": 0.3, "r_lang": 1.0, "len": 30.0},
             "zh": {"n": 4, "share": 0.5, "reward": 0.1, "r_lang": 0.5, "len": 50.0}}
    if s % 2 == 0:
        langs = {**langs, "ja": {"n": 2, "share": 0.25, "reward": 0.2, "r_lang": 0.0, "len": 64.0}}
        langs["zh"] = {**langs["zh"], "n": 2, "share": 0.25}
        row["val"] = {"reward": 0.2, "r_lang": 0.6, "r_qual": 0.3, "n": 8, "langs": {
            "de": {"n": 4, "reward": 0.3, "r_lang": 1.0}, "ja": {"n": 4, "reward": 0.1, "r_lang": 0.2}}}
    row.update(zero_std_groups=0.25, gated_groups=0.125, truncated=0.5, off_language=0.1, masked_truncated=0,
               langs=langs)
    return row


def write_run(run, new: bool = True, updates: int = 2, partial_tail: bool = False):
    """4 steps in metrics.jsonl, 3 router snapshots (steps 0, 2, 4) in router.jsonl."""
    os.makedirs(run, exist_ok=True)
    snapshots = (snapshot(0, 1 / 15), snapshot(2, 0.3), snapshot(4, 0.5))
    (run / "router.jsonl").write_text("".join(json.dumps(s) + "\n" for s in snapshots))
    tail = '{"step": 5, "rew' if partial_tail else ""        # a job killed mid-write
    (run / "metrics.jsonl").write_text("".join(json.dumps(metrics_row(s, new, updates if new else 1)) + "\n"
                                               for s in range(1, 5)) + tail)


def pooled_run(run):
    """3 steps where pooling by rollouts and averaging the per-step means differ: de has 1 rollout
    scoring 1 at step 1, 3 scoring 0 at step 2 (pooled 0.25, mean of means 0.5), none at step 3."""
    os.makedirs(run, exist_ok=True)
    (run / "router.jsonl").write_text(json.dumps(snapshot(0, 0.5)) + "\n")

    def lang(n, total, reward):
        return {"n": n, "share": n / total, "reward": reward, "r_lang": reward, "len": 10.0 * n}
    langs = ({"de": lang(1, 4, 1.0), "zh": lang(3, 4, 0.0)}, {"de": lang(3, 4, 0.0), "zh": lang(1, 4, 1.0)},
             {"zh": lang(8, 8, 0.5)})
    rows = [{"step": s, "reward": r, "langs": l} for s, r, l in zip((1, 2, 3), (0.0, 0.3, 0.9), langs)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def rollout(step, id_, k, lang, detected, response, reward, adv, length, stopped=True):
    return {"step": step, "id": id_, "topic": "Mathematics", "region": ["China"], "prompt_lang": "zh",
            "lang": lang, "request": "tag", "k": k, "response": response, "detected": detected, "sim": 0.7,
            "r_qual": 0.7, "r_lang": float(lang == detected), "reward": reward, "advantage": adv,
            "length": length, "stopped": stopped}


def write_rollouts(run, tail: str = ""):
    """Rotated: step 1 in rollouts.2.jsonl, step 2 in rollouts.1.jsonl; step 4 (groups b, c) in rollouts.jsonl."""
    os.makedirs(run, exist_ok=True)
    oldest = [rollout(1, "z", k, "en", "en", "hi", 0.5, 0.0, 1) for k in (0, 1)]
    old = [rollout(2, "a", 0, "zh", "zh", "", 0.7, 1.0, 0),
           rollout(2, "a", 1, "de", "de", "\x1b[31mrot\r\nneu\t!", 0.0, -1.0, 2)]
    new = [rollout(4, "b", 0, "zh", "zh", "答案是 42。", 0.7, 1.0, 12),
           rollout(4, "b", 1, "ja", "en", "line one\nline two", 0.0, -1.0, 64, stopped=False),
           rollout(4, "c", 0, "de", None, "x" * 300, 0.0, 0.0, 64, stopped=False),
           rollout(4, "c", 1, "de", "de", "中" * 300, 0.0, 0.0, 64, stopped=False)]
    (run / "rollouts.2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in oldest))
    (run / "rollouts.1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    (run / "rollouts.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in new) + tail)


def plot(*args):
    return subprocess.run([sys.executable, "plot.py", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def plt():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt
    yield plt
    plt.close("all")


def test_plot_of_an_older_log_or_the_missing_dependency(tmp_path):
    """The README's command on a log from before the diagnostics: the figures it can draw, and what it skipped."""
    write_run(tmp_path / "run", new=False, partial_tail=True)
    proc = plot(tmp_path / "run")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert proc.returncode != 0 and "pip install matplotlib" in proc.stderr, proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    assert "dropped a half-written last line" in proc.stderr
    assert "metrics.png: 5 panels over 4 steps" in proc.stdout
    assert "router.png: 3 heatmaps and 2 topic lines over 3 router updates" in proc.stdout
    for what in ("metrics.png's rollout-health panel", 'languages.png: no "langs"',
                 "updates.png: one optimizer step per rollout step", "validation.png: no validation steps"):
        assert f"skipped {what}" in proc.stdout, proc.stdout
    assert sorted(p.name for p in (tmp_path / "run").glob("*.png")) == ["metrics.png", "router.png"]


def test_every_figure_of_a_run_with_the_diagnostics(tmp_path, plt, capsys):
    import math
    from plot import colours, draw
    write_run(tmp_path / "run", updates=3)
    figs = draw(str(tmp_path / "run"), str(tmp_path / "png"))
    out = capsys.readouterr().out
    assert "skipped" not in out and "8 panels" not in out
    for name in ("metrics.png", "languages.png", "updates.png", "validation.png", "router.png"):
        assert (tmp_path / "png" / name).stat().st_size > 1000 and name in figs
    colour = colours(plt, LANGUAGES)
    assert len(set(colour.values())) == 15
    health = figs["metrics.png"].axes[5]                      # the rollout-health fractions
    assert [l.get_label() for l in health.lines][1] == "groups gated to 0"
    assert list(health.lines[1].get_ydata()) == [0.125] * 4
    # languages.png: one line per language seen, a gap (not a 0) where ja has no rollouts (Decision 4)
    reward, share, mix, legend = (figs["languages.png"].axes[i] for i in (0, 3, 4, 5))
    lines = {l.get_label(): l for l in reward.lines}
    assert list(lines) == ["de", "ja", "zh"] and reward.get_title().endswith(", per step")   # 4 steps: W = 1
    ja = list(lines["ja"].get_ydata())
    assert math.isnan(ja[0]) and math.isnan(ja[2]) and ja[1] == ja[3] == 0.2
    assert list(share.lines[2].get_ydata()) == [0.5, 0.25, 0.5, 0.25]
    assert len(mix.collections) == 3 and [t.get_text() for t in legend.get_legend().get_texts()] == ["de", "ja", "zh"]
    # updates.png: x = optimizer step across the run, grey lines between rollout steps
    clip = figs["updates.png"].axes[0]
    assert [l.get_label() for l in clip.lines] == ["all", "low side, A < 0", "high side, A > 0", "dual-clip"]
    assert list(clip.lines[0].get_xdata()) == list(range(1, 13))       # 4 rollout steps x M*E = 3
    assert clip.lines[0].get_ydata()[4] == pytest.approx(0.021)         # step 2, its second optimizer step
    assert [seg[0][0] for seg in clip.collections[0].get_segments()] == [3.5, 6.5, 9.5]
    # validation.png: the overall line and one per language, at the validation steps only
    val = {l.get_label(): l for l in figs["validation.png"].axes[0].lines}
    assert list(val) == ["all", "de", "ja"] and list(val["all"].get_xdata()) == [2, 4]
    # router.png: the topic that moved comes first, zh on top, plus the uniform line
    top = figs["router.png"].axes[3]
    assert top.get_title() == "Regional Knowledge: top 4 languages"
    assert [l.get_label() for l in top.lines][0] == "zh" and len(top.lines) == 5
    assert list(top.lines[0].get_ydata()) == pytest.approx([1 / 15, 0.3, 0.5])
    for panel in (lines, {l.get_label(): l for l in share.lines}, val, {l.get_label(): l for l in top.lines}):
        for lang in set(panel) & {"de", "ja", "zh"}:                    # one colour per language (Decision 3)
            assert panel[lang].get_color() == colour[lang]


def test_smoothing_pools_rollouts_not_per_step_means(tmp_path):
    """Decision 7, without matplotlib: a window's mean is sum(n x mean) / sum(n), its share sum(n) / sum(rollouts)."""
    import math
    from plot import language_series, smooth
    assert smooth([1, 2], [1.0, 0.0], [1, 3], 2) == [0.25, 0.0]          # not (1.0 + 0.0) / 2
    assert smooth([1, 2, 5], [1.0, 0.0, 1.0], [1, 3, 5], 3) == [0.25, 0.25, 1.0]   # windows of steps, not rows
    assert smooth([1, 2], [float("nan"), 0.5], [2, 2], 2) == [0.5, 0.5]  # a NaN mean weighs 0
    rows = pooled_run(tmp_path)
    raw = language_series(rows, "de", "reward", 1)
    assert raw[:2] == [1.0, 0.0] and math.isnan(raw[2])                  # absent: a gap, not 0
    pooled = language_series(rows, "de", "reward", 2)                    # steps s, s + 1
    assert pooled[:2] == [0.25, 0.0] and math.isnan(pooled[2])
    assert language_series(rows, "de", "reward", 3) == [0.25, 0.25, 0.0]  # no gap: the window has de
    assert language_series(rows, "de", "len", 2)[0] == pytest.approx((1 * 10 + 3 * 30) / 4)
    assert language_series(rows, "de", "share", 2) == [0.5, 0.25, 0.0]  # (1 + 3) / 8; 3 / 12, not 0.375
    assert language_series(rows, "zh", "share", 2) == [0.5, 0.75, 1.0]


def test_smoothed_lines_in_the_figures(tmp_path, plt):
    import math
    from plot import draw
    pooled_run(tmp_path / "run")
    figs = draw(str(tmp_path / "run"), str(tmp_path / "png"), 2)
    reward, share, mix = (figs["languages.png"].axes[i] for i in (0, 3, 4))
    assert reward.get_title() == "reward per language, 2-step windows"
    assert mix.get_title() == "rollout-language mix (stacked shares), 2-step windows"
    de = {l.get_label(): l for l in reward.lines}["de"]
    assert list(de.get_xdata()) == [1, 2, 3] and list(de.get_ydata()[:2]) == [0.25, 0.0]
    assert math.isnan(de.get_ydata()[2])
    assert list({l.get_label(): l for l in share.lines}["de"].get_ydata()) == [0.5, 0.25, 0.0]
    zh = mix.collections[-1].get_paths()[0].vertices[:, 1]               # zh, stacked on de's pooled shares
    assert {round(float(y), 9) for y in zh} == {0.5, 0.25, 0.0, 1.0}     # ... and topping out at 1
    # metrics.png: the 2-step means, with the per-step values faint beneath (left out of any legend)
    overall = figs["metrics.png"].axes[0]
    line, faint = overall.lines
    assert list(line.get_ydata()) == pytest.approx([0.15, 0.6, 0.9]) and list(faint.get_ydata()) == [0.0, 0.3, 0.9]
    assert faint.get_alpha() < 1 and faint.get_label().startswith("_") and faint.get_color() == line.get_color()
    assert "2-step mean" in overall.get_xlabel()


def test_rollouts_print_a_group_per_block_without_matplotlib(tmp_path, capsys, monkeypatch):
    from plot import main
    monkeypatch.setitem(sys.modules, "matplotlib", None)        # as if not installed
    monkeypatch.setenv("COLUMNS", "100")
    write_rollouts(tmp_path, tail='{"step": 4, "id": "d", "to')
    main([str(tmp_path), "--rollouts"])
    out, err = capsys.readouterr()
    assert "dropped a half-written last line" in err
    lines = out.splitlines()
    assert lines[0].startswith("step 4: 2 of its 2 logged groups")
    assert "== step 4 · id b · topic Mathematics · region China · prompt zh · request tag · 2 rollouts" in lines
    assert "  0  zh → zh      0.700  0.700  1.000  +1.00    12 stop 答案是 42。" in lines
    assert "  1  ja → en ✗    0.000  0.700  0.000  -1.00    64 cut  line one⏎line two" in lines
    assert any(l.startswith("  0  de → - ✗ ") and l.endswith("x…") for l in lines)        # nothing detected
    for line in lines:                                          # shortened to the terminal's 100 columns
        assert sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line) <= 100
    main([str(tmp_path), "--rollouts", "--step", "2", "--n", "1"])     # from a rotated file
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("step 2: 1 of its 1 logged groups") and "step 4" not in "".join(out)
    assert out[-2].endswith(" 0 stop (empty)") and out[-1].endswith(" 2 stop  [31mrot⏎neu !")  # no escapes
    with pytest.raises(SystemExit, match="pip install matplotlib"):
        main([str(tmp_path)])
    proc = plot(tmp_path, "--rollouts")                           # the README's command
    assert proc.returncode == 0 and "== step 4 · id c" in proc.stdout, proc.stderr


def test_rollout_errors_name_the_file_and_line(tmp_path, capsys):
    from plot import main
    with pytest.raises(SystemExit, match=r"no rollouts.jsonl \(lrpo.py writes it with --log_rollouts"):
        main([str(tmp_path), "--rollouts"])
    write_rollouts(tmp_path)
    with pytest.raises(SystemExit, match=r"no rollouts logged at step 3; logged steps: 1, 2, 4$"):
        main([str(tmp_path), "--rollouts", "--step", "3"])
    rows = (tmp_path / "rollouts.jsonl").read_text().splitlines()
    for key, value, error in (("reward", None, "field 'reward' is missing"), ("k", "1", "field 'k' is str: '1'")):
        bad = {**json.loads(rows[2]), key: value}
        if value is None:
            del bad[key]
        (tmp_path / "rollouts.jsonl").write_text("\n".join([*rows[:2], json.dumps(bad), rows[3]]) + "\n")
        with pytest.raises(SystemExit, match=rf"rollouts.jsonl:3: {error}"):
            main([str(tmp_path), "--rollouts"])
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--n", "2"])                       # --n without --rollouts: a usage error
    assert "--step and --n go with --rollouts" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--smooth", "0"])
    assert "argument --smooth: must be >= 1, got 0" in capsys.readouterr().err


def test_bad_router_log_names_the_file_and_line(tmp_path):
    from plot import router_rows
    bad = tmp_path / "router.jsonl"
    bad.write_text(json.dumps({"step": 0, "topics": {}, "regions": {}}) + "\n" + json.dumps({"step": 4}) + "\n")
    with pytest.raises(ValueError, match=r"router.jsonl:2: field 'topics' is missing"):
        router_rows(str(bad))
    good = json.dumps(snapshot(0, 0.5))
    bad.write_text(f"{good}\n{{oops}}\n{good}\n")
    with pytest.raises(ValueError, match=r"router.jsonl:2: not valid JSON"):
        router_rows(str(bad))
