"""
Plot a run from its logs, or print a sample of what the policy wrote.

    python plot.py out/                          # -> the PNGs below, in out/
    python plot.py out/ --to figures/            # elsewhere
    python plot.py out/ --smooth 10              # per-language means over 10-step windows (1: per step)
    python plot.py out/ --rollouts               # the last logged step's first 3 groups, as text
    python plot.py out/ --rollouts --step 40 --n 8

Figures (each skipped, with the reason printed, when the log lacks what it shows):
  metrics.png     per step (faint) and over --smooth windows: reward, r_lang, r_qual, KL, length,
                  and the rollout-health fractions (groups with equal rewards, groups the gate scored
                  0, rollouts cut at --max_new_tokens, rollouts off the requested language)  (metrics.jsonl)
  languages.png   per requested language over --smooth windows: reward, r_lang, length, share of
                  rollouts, and the language mix as a stacked area         (metrics.jsonl "langs")
  updates.png     per optimizer step: clip fractions, ratio min / mean / max, approx_kl and kl,
                  loss, gradient norm; grey lines mark rollout steps     (metrics.jsonl "updates")
  validation.png  validation reward and r_lang, overall and per language    (metrics.jsonl "val")
  router.png      a heatmap (language x router update) per topic and region, and below them the
                  probabilities of the top languages of the topics that moved most   (router.jsonl)
`--rollouts` needs no matplotlib: a block per group (step, id, topic, region, prompt language, how
the language was requested), a line per rollout (requested → detected language, ✗ when they differ;
reward, r_qual, r_lang, advantage, length, stop or cut; the response on one line, newlines as ⏎).
matplotlib is optional (pip install matplotlib); without it the plotting command says so and exits.

Decisions:
1. Logs are read with the reader checkpoint.read_log uses (data.records.read_jsonl): a half-written
   last line of a running job is skipped with a warning, any other bad line or a missing or mistyped
   field is an error naming file and line. Rotated rollout files (rollouts.N.jsonl) are read oldest
   first, ordered by their first step, whichever way they are numbered.
2. One colour scale for every router heatmap, so panels compare at a glance.
3. One colour per language in every figure: tab20's ten dark shades, then its light ones, given to
   the router's languages in router.jsonl's order, so the 15 stay distinct, neighbours in a legend
   differ in hue, and runs with the same languages share colours.
4. A language with no rollouts in a window (Decision 7) is a gap in its lines, not a 0 (its mean is
   undefined); in the stacked mix its share is 0, which it is.
5. updates.png is drawn only when some rollout step took several optimizer steps (M x E > 1): with
   one, the policy is its own old policy, so the ratio is exactly 1 and nothing clips, and the
   figure would hold flat lines and metrics.png's loss.
6. The router's line plots show the 3 topics whose distribution moved most (total variation from the
   first snapshot to the last), each with the 4 languages that reached the highest probability.
7. A language gets few of a step's rollouts (~4 of 64 with 15), so its per-step means jump between 0
   and 1: languages.png pools --smooth W steps (default steps / 20, at least 1; 1: per step), centred
   (s - (W-1)//2 .. s + W//2) so nothing lags, by rollouts: a mean is sum(n x mean) / sum(n), a share
   sum(n) / sum(rollouts), never a mean of means (n = 1 scoring 1 and n = 3 scoring 0 pool to 0.25,
   not 0.5); a step without the language adds n = 0. metrics.png draws the same windows (each step has
   as many rollouts) over its per-step values, faint: trends read, one-step spikes still show. Each
   validation stays a point: they are far apart, and pooling them would mix checkpoints.
"""
import argparse
import glob
import math
import os
import re
import shutil
import sys
import unicodedata
from bisect import bisect_left, bisect_right
from itertools import accumulate

from data.records import ranged, read_jsonl

NAN = float("nan")
NUM = (int, float)
METRICS = (("reward", "reward r = r_qual x r_lang"), ("r_lang", "language gate r_lang"),
           ("r_qual", "calibrated quality r_qual"), ("kl", "KL to the reference (k3)"),
           ("response_len", "response tokens"))
HEALTH = (("zero_std_groups", "groups with equal rewards"), ("gated_groups", "groups gated to 0"),
          ("truncated", "cut at --max_new_tokens"), ("off_language", "off the requested language"))
PER_LANGUAGE = (("reward", "reward per language"), ("r_lang", "r_lang per language"),
                ("len", "response tokens per language"), ("share", "share of rollouts per language"))
ROLLOUT_FIELDS = {"step": int, "id": str, "topic": str, "region": list, "prompt_lang": str, "lang": str,
                  "request": str, "k": int, "response": str, "detected": (str, type(None)), "reward": NUM,
                  "r_qual": NUM, "r_lang": NUM, "advantage": NUM, "length": int, "stopped": bool}
TOP_TOPICS, TOP_LANGS = 3, 4                                     # Decision 6


def read_rows(path: str, fields: dict, what: str) -> list[dict]:
    """The rows of a JSON Lines log, each holding `fields` ({name: type}); errors name file and line."""
    rows = []
    for lineno, row in read_jsonl(path, partial_tail=lambda msg: print(f"warning: {msg}", file=sys.stderr)):
        for key, kind in fields.items():
            if key not in row:
                raise ValueError(f"{path}:{lineno}: field {key!r} is missing (expected {what})")
            if not isinstance(row[key], kind):
                raise ValueError(f"{path}:{lineno}: field {key!r} is {type(row[key]).__name__}: {row[key]!r:.40}")
        rows.append(row)
    return rows


def router_rows(path: str) -> list[dict]:
    """The router.snapshot() lines of a router.jsonl log."""
    rows = read_rows(path, {"step": int, "topics": dict, "regions": dict}, "a router snapshot")
    if not rows:
        raise ValueError(f"{path}: no router snapshots")
    return rows


# ----------------------------------------------------------------------------- figures
# Each plot_* draws one PNG of the module docstring, prints what it drew and returns the figure.

def num(x) -> float:
    """x as a float to plot; NaN (a gap) when absent, not a number, or infinite."""
    return float(x) if isinstance(x, NUM) and math.isfinite(x) else NAN


def smooth(steps: list[int], values: list[float], weights: list[float], w: int) -> list[float]:
    """Decision 7: at each step s, sum(weight x value) / sum(weight) over the steps of its window
    s - (w-1)//2 .. s + w//2 (steps ascending); a NaN value weighs 0, a window weighing 0 is NaN."""
    weights = [c if v == v else 0 for v, c in zip(values, weights)]          # v == v: not NaN
    cv = [0, *accumulate(c * v if c else 0 for v, c in zip(values, weights))]  # prefix sums
    cw = [0, *accumulate(weights)]
    ends = [(bisect_left(steps, s - (w - 1) // 2), bisect_right(steps, s + w // 2)) for s in steps]
    return [(cv[hi] - cv[lo]) / (cw[hi] - cw[lo]) if cw[hi] > cw[lo] else NAN for lo, hi in ends]


def colours(plt, languages: list[str]) -> dict:
    """Decision 3: {language: colour} for the router's languages in its order, the same in every figure."""
    tab = plt.get_cmap("tab20").colors
    return dict(zip(languages, [tab[i] for i in (*range(0, 20, 2), *range(1, 20, 2))]))


def languages_in(dicts, colour: dict) -> list[str]:
    """The languages keyed in any of `dicts`: the router's in its order, then any others."""
    seen = {lang for d in dicts for lang in d}
    return [l for l in colour if l in seen] + sorted(seen - set(colour))


def legend_panel(ax, source, title: str = "language") -> None:
    ax.axis("off")
    ax.legend(*source.get_legend_handles_labels(), loc="center", ncol=2, fontsize=8, title=title)


def plot_metrics(plt, rows: list[dict], out: str, skipped: list, w: int):
    fig, axes = plt.subplots(2, 3, figsize=(14, 6.4), layout="constrained")
    steps = [r["step"] for r in rows]

    def trend(ax, key, label=None):                             # Decision 7: W-step means over faint steps
        ys = [num(r.get(key)) for r in rows]
        line, = ax.plot(steps, smooth(steps, ys, [1] * len(ys), w), lw=1.2, label=label)
        if w > 1:
            ax.plot(steps, ys, lw=0.6, alpha=0.3, color=line.get_color(), zorder=1, label="_per step")
        ax.set_xlabel("training step" + (f" (faint: each step; lines: {w}-step mean)" if w > 1 else ""), fontsize=8)
    for ax, (key, title) in zip(axes.flat, METRICS):
        trend(ax, key)
        ax.set_title(title, fontsize=10)
    ax, panels = axes.flat[5], len(METRICS)
    if any(key in r for r in rows for key, _ in HEALTH):
        for key, label in HEALTH:
            trend(ax, key, label)
        masked = sum(r.get("masked_truncated", 0) for r in rows)
        ax.set_title("rollout health (fractions)" + (f"; {masked} cut rollouts masked" if masked else ""),
                     fontsize=10)
        ax.set_ylim(-0.03, 1.03)
        ax.legend(fontsize=7)
        panels += 1
    else:
        ax.axis("off")
        skipped.append("metrics.png's rollout-health panel: no zero_std_groups / gated_groups / truncated / "
                       "off_language in metrics.jsonl")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}: {panels} panels over {len(rows)} steps")
    return fig


def language_series(rows: list[dict], lang: str, key: str, w: int) -> list[float]:
    """Decision 7: `lang`'s `key` ("reward", "r_lang", "len" or "share") pooled over w-step windows."""
    steps, stats = [r["step"] for r in rows], [r["langs"].get(lang, {}) for r in rows]
    if key == "share":                                          # sum(n) / sum(rollouts)
        totals = [sum(d.get("n", 0) for d in r["langs"].values()) for r in rows]
        return smooth(steps, [s.get("n", 0) / t if t else NAN for s, t in zip(stats, totals)], totals, w)
    return smooth(steps, [num(s.get(key)) for s in stats], [s.get("n", 0) for s in stats], w)


def plot_languages(plt, rows: list[dict], out: str, colour: dict, w: int):
    rows = [r for r in rows if isinstance(r.get("langs"), dict)]
    steps, langs = [r["step"] for r in rows], languages_in((r["langs"] for r in rows), colour)
    fig, axes = plt.subplots(2, 3, figsize=(14, 6.4), layout="constrained")
    span = "per step" if w == 1 else f"{w}-step windows"
    series = {(lang, key): language_series(rows, lang, key, w) for lang in langs for key, _ in PER_LANGUAGE}
    for ax, (key, title) in zip(axes.flat, PER_LANGUAGE):
        for lang in langs:                                       # Decision 4: absent -> NaN, a gap
            ax.plot(steps, series[lang, key], lw=1, marker="." if w == 1 else None, ms=3,
                    color=colour.get(lang, "black"), label=lang)
    axes.flat[4].stackplot(steps, *[[0.0 if v != v else v for v in series[lang, "share"]] for lang in langs],
                           colors=[colour.get(lang, "black") for lang in langs], labels=langs)
    axes.flat[4].set_ylim(0, 1)
    for ax, (_, title) in zip(axes.flat, (*PER_LANGUAGE, (None, "rollout-language mix (stacked shares)"))):
        ax.set_title(f"{title}, {span}", fontsize=10)
        ax.set_xlabel("training step", fontsize=8)
    legend_panel(axes.flat[5], axes.flat[0])
    fig.savefig(out, dpi=110)
    print(f"wrote {out}: 5 panels, {len(langs)} languages over {len(rows)} steps, {span}")
    return fig


def plot_updates(plt, rows: list[dict], out: str):
    rows = [r for r in rows if isinstance(r.get("updates"), dict) and r["updates"].get("loss")]
    sizes = [len(r["updates"]["loss"]) for r in rows]           # M x E optimizer steps per rollout step

    def series(stat):
        return [num(v) for r, n in zip(rows, sizes) for v in r["updates"].get(stat, [NAN] * n)]
    x = range(1, sum(sizes) + 1)
    fig, axes = plt.subplots(1, 5, figsize=(18, 3.4), layout="constrained")
    for stat, label in (("clip_frac", "all"), ("clip_low_frac", "low side, A < 0"),
                        ("clip_high_frac", "high side, A > 0"), ("dual_clip_frac", "dual-clip")):
        axes[0].plot(x, series(stat), lw=1, label=label)
    axes[1].fill_between(x, series("ratio_min"), series("ratio_max"), alpha=0.3, label="min .. max")
    axes[1].plot(x, series("ratio"), lw=1, label="token mean")
    axes[1].axhline(1, color="0.5", lw=0.6)
    for stat in ("approx_kl", "kl"):
        axes[2].plot(x, series(stat), lw=1, label={"approx_kl": "approx_kl (to old)", "kl": "kl (to ref)"}[stat])
    axes[3].plot(x, series("loss"), lw=1)
    axes[4].plot(x, series("grad_norm"), lw=1)
    ends = [sum(sizes[:i + 1]) + 0.5 for i in range(len(sizes) - 1)]
    ends = ends[::math.ceil(len(ends) / 100) or 1]              # at most ~100 boundary lines
    for ax, title in zip(axes, ("clipped token fraction", "importance ratio", "KL", "loss", "gradient norm")):
        ax.vlines(ends, 0, 1, transform=ax.get_xaxis_transform(), colors="0.85", lw=0.6, zorder=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("optimizer step (grey: a new rollout step)", fontsize=8)
    for ax in axes[:3]:
        ax.legend(fontsize=7)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}: 5 panels over {len(x)} optimizer steps of {len(rows)} rollout steps")
    return fig


def plot_validation(plt, rows: list[dict], out: str, colour: dict):
    rows = [r for r in rows if isinstance(r.get("val"), dict)]
    steps, langs = [r["step"] for r in rows], languages_in((r["val"].get("langs", {}) for r in rows), colour)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), width_ratios=(1, 1, 0.5), layout="constrained")
    for ax, key in zip(axes, ("reward", "r_lang")):
        ax.plot(steps, [num(r["val"].get(key)) for r in rows], color="black", lw=2.2, marker="o", label="all")
        for lang in langs:
            ax.plot(steps, [num(r["val"].get("langs", {}).get(lang, {}).get(key)) for r in rows], lw=1,
                    marker=".", color=colour.get(lang, "black"), label=lang)
        ax.set_title(f"validation {key}", fontsize=10)
        ax.set_xlabel("training step", fontsize=8)
    legend_panel(axes[2], axes[0])
    fig.savefig(out, dpi=110)
    print(f"wrote {out}: 2 panels, {len(langs)} languages over {len(rows)} validations")
    return fig


def moved_topics(rows: list[dict]) -> list[str]:
    """Decision 6: the topics whose distribution moved most from the first snapshot to the last."""
    def tv(name):
        first, last = rows[0]["topics"].get(name, {}), rows[-1]["topics"].get(name, {})
        return sum(abs(last.get(l, 0) - first.get(l, 0)) for l in {*first, *last}) / 2
    return sorted(rows[-1]["topics"], key=tv, reverse=True)[:TOP_TOPICS]


def plot_router(plt, rows: list[dict], out: str, colour: dict):
    panels = [(kind, name) for kind in ("topics", "regions")
              for name in dict.fromkeys(n for r in rows for n in r[kind])]
    langs = list(next(iter(rows[0]["topics"].values())))
    topics, steps = moved_topics(rows), [r["step"] for r in rows]
    nrows = math.ceil(len(panels) / 3)                          # 3 panels a row
    fig, axes = plt.subplots(nrows + 1, 3, figsize=(15, 3.6 * (nrows + 1)), squeeze=False, layout="constrained")
    heat = list(axes[:nrows].flat)
    vmax = max(p for r in rows for kind in ("topics", "regions") for d in r[kind].values() for p in d.values())
    for ax, (kind, name) in zip(heat, panels):
        grid = [[r[kind][name][l] if name in r[kind] else NAN for r in rows] for l in langs]
        im = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=vmax,
                       extent=(rows[0]["step"] - 0.5, rows[-1]["step"] + 0.5, len(langs) - 0.5, -0.5))
        ax.set_title(("region: " if kind == "regions" else "") + name, fontsize=10)
        ax.set_yticks(range(len(langs)), langs, fontsize=7)
        ax.set_xlabel("training step", fontsize=8)
    fig.colorbar(im, ax=axes[:nrows], shrink=0.6, label="routing probability softmax(z / tau)")
    for ax, topic in zip(axes[nrows], topics):
        probs = {l: [num(r["topics"].get(topic, {}).get(l)) for r in rows] for l in langs}
        peak = {l: max((p for p in probs[l] if p == p), default=0.0) for l in langs}   # p == p: not NaN
        for lang in sorted(langs, key=peak.get, reverse=True)[:TOP_LANGS]:
            ax.plot(steps, probs[lang], lw=1.2, marker=".", color=colour.get(lang, "black"), label=lang)
        ax.axhline(1 / len(langs), color="0.6", lw=0.6, ls=":", label="uniform")
        ax.set_title(f"{topic}: top {TOP_LANGS} languages", fontsize=10)
        ax.set_xlabel("training step (router updates)", fontsize=8)
        ax.legend(fontsize=7)
    for ax in [*heat[len(panels):], *axes[nrows][len(topics):]]:
        ax.axis("off")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}: {len(panels)} heatmaps and {len(topics)} topic lines over {len(rows)} router updates")
    return fig


def draw(run: str, to: str, w: int | None = None) -> dict:
    """Every figure the logs allow (module docstring), saved in `to`, over w-step windows (default:
    Decision 7); say which were skipped and why. -> {file name: figure}."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot.py needs matplotlib, an optional dependency: pip install matplotlib")
    os.makedirs(to, exist_ok=True)
    try:
        metrics = read_rows(os.path.join(run, "metrics.jsonl"), {"step": int}, "a metrics row")
        router = router_rows(os.path.join(run, "router.jsonl"))
    except (OSError, ValueError) as e:
        sys.exit(f"plot.py: {e}")
    if not metrics:
        sys.exit(f"plot.py: {run}/metrics.jsonl has no steps yet")
    colour = colours(plt, list(next(iter(router[0]["topics"].values()), {})))
    w = max(1, round(len(metrics) / 20)) if w is None else w
    per_step = max((len((r.get("updates") or {}).get("loss", ())) for r in metrics), default=0)
    skipped, figs = [], {}
    figs["metrics.png"] = plot_metrics(plt, metrics, os.path.join(to, "metrics.png"), skipped, w)
    why = {"languages.png": None if any(isinstance(r.get("langs"), dict) for r in metrics)
           else 'no "langs" in metrics.jsonl (a log from before the per-language diagnostics)',
           "updates.png": None if per_step > 1 else "one optimizer step per rollout step (Decision 5)"
           if per_step else 'no "updates" in metrics.jsonl',
           "validation.png": None if any(isinstance(r.get("val"), dict) for r in metrics)
           else "no validation steps in metrics.jsonl"}
    draws = {"languages.png": lambda out: plot_languages(plt, metrics, out, colour, w),
             "updates.png": lambda out: plot_updates(plt, metrics, out),
             "validation.png": lambda out: plot_validation(plt, metrics, out, colour)}
    for name, plot in draws.items():
        if why[name]:
            skipped.append(f"{name}: {why[name]}")
        else:
            figs[name] = plot(os.path.join(to, name))
    figs["router.png"] = plot_router(plt, router, os.path.join(to, "router.png"), colour)
    for what in skipped:
        print(f"skipped {what}")
    return figs


# ----------------------------------------------------------------------------- rollouts as text

def read_rollouts(run: str) -> list[dict]:
    """rollouts.jsonl and its rotated predecessors, oldest first (Decision 1)."""
    paths = [p for p in glob.glob(os.path.join(run, "rollouts.*.jsonl"))
             if re.fullmatch(r"rollouts\.\d+\.jsonl", os.path.basename(p))]
    paths += [p for p in [os.path.join(run, "rollouts.jsonl")] if os.path.exists(p)]
    if not paths:
        raise ValueError(f"{run}: no rollouts.jsonl (lrpo.py writes it with --log_rollouts N > 0)")
    files = [rows for p in paths if (rows := read_rows(p, ROLLOUT_FIELDS, "a rollouts.jsonl row"))]
    return [r for rows in sorted(files, key=lambda rows: rows[0]["step"]) for r in rows]


def groups_of(rows: list[dict]) -> list[list[dict]]:
    """Consecutive rows of one step and item id, a new group at k = 0: the K rollouts of a prompt."""
    groups = []
    for r in rows:
        if groups and r["k"] and (groups[-1][0]["step"], groups[-1][0]["id"]) == (r["step"], r["id"]):
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


def one_line(text: str, width: int) -> str:
    """text on one line of `width` columns: newlines as ⏎, other control characters (tabs, terminal
    escapes) as spaces, wide (CJK) characters counted twice."""
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in re.sub(r"\r\n|\r|\n", "⏎", text))
    used = 0
    for i, c in enumerate(text):
        used += 2 if unicodedata.east_asian_width(c) in "WF" else 1
        if used > width - (i + 1 < len(text)):                  # keep a column for the ellipsis
            return text[:i] + "…"
    return text


def print_rollouts(run: str, step: int | None, n: int, width: int) -> None:
    groups = groups_of(read_rollouts(run))
    steps = list(dict.fromkeys(g[0]["step"] for g in groups))
    if not steps:
        raise ValueError(f"{run}: rollouts.jsonl holds no rollouts yet")
    step = steps[-1] if step is None else step
    shown = [g for g in groups if g[0]["step"] == step]
    if not shown:
        listed = ", ".join(map(str, steps)) if len(steps) <= 12 else \
            ", ".join(map(str, steps[:5])) + ", ..., " + ", ".join(map(str, steps[-5:]))
        raise ValueError(f"{run}: no rollouts logged at step {step}; logged steps: {listed}")
    print(f"step {step}: {min(n, len(shown))} of its {len(shown)} logged groups (--step S, --n G for others)")
    head = f" {'k':>2}  {'lang':<11} {'reward':>6} {'r_qual':>6} {'r_lang':>6} {'adv':>6} {'len':>5} end  "
    for g in shown[:n]:
        r0 = g[0]
        print(f"\n== step {r0['step']} · id {r0['id']} · topic {r0['topic']} · region "
              f"{', '.join(map(str, r0['region'])) or '-'} · prompt {r0['prompt_lang']} · request {r0['request']}"
              f" · {len(g)} rollouts")
        print(head + "response")
        for r in g:
            det = r["detected"] or "-"
            lang = f"{r['lang']} → {det}" + (" ✗" if det != r["lang"] else "")
            line = (f" {r['k']:>2}  {lang:<11} {r['reward']:6.3f} {r['r_qual']:6.3f} {r['r_lang']:6.3f} "
                    f"{r['advantage']:+6.2f} {r['length']:5d} {'stop' if r['stopped'] else 'cut ':<4} ")
            print(line + (one_line(r["response"], max(width - len(line), 20)) or "(empty)"))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Plot an LRPO run (metrics.jsonl, router.jsonl), or print "
                                            "a sample of its rollouts.jsonl.")
    p.add_argument("run", help="the run's --out_dir")
    p.add_argument("--to", help="directory for the PNGs (default: the run's directory)")
    p.add_argument("--smooth", type=ranged(int, lo=1), metavar="W", help="steps per window of the smoothed lines "
                   "(default: steps / 20, at least 1; 1: each step)")
    p.add_argument("--rollouts", action="store_true", help="print logged rollouts instead (no matplotlib needed)")
    p.add_argument("--step", type=int, help="with --rollouts: the training step to show (default: the last logged)")
    p.add_argument("--n", type=ranged(int, lo=1), help="with --rollouts: groups to show (default 3)")
    args = p.parse_args(argv)
    if not args.rollouts:
        if args.step is not None or args.n is not None:
            p.error("--step and --n go with --rollouts")
        draw(args.run, args.to or args.run, args.smooth)
        return
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")                # ⏎, → on a terminal that lacks them
    try:
        print_rollouts(args.run, args.step, args.n or 3, shutil.get_terminal_size((120, 24)).columns)
    except (OSError, ValueError) as e:
        sys.exit(f"plot.py: {e}")


if __name__ == "__main__":
    main()
