"""
Plot a run: its metrics per step, and the router's language probabilities per update.

    python plot.py out/                    # -> out/metrics.png and out/router.png
    python plot.py out/ --to figures/      # elsewhere

metrics.png: reward, r_lang, r_qual, KL and response length per step (metrics.jsonl);
router.png: one heatmap (language x router update) per topic and per region seen (router.jsonl).
matplotlib is optional (pip install matplotlib); without it the command says so and exits.

Decisions:
1. Logs are read as a resume reads them (checkpoint.read_log): a half-written last line of a
   running job is skipped with a warning, any other bad line is an error naming file and line.
2. One colour scale for every router heatmap, so panels compare at a glance.
"""
import argparse
import math
import os
import sys

from checkpoint import read_log

METRICS = (("reward", "reward r = r_qual x r_lang"), ("r_lang", "language gate r_lang"),
           ("r_qual", "calibrated quality r_qual"), ("kl", "KL to the reference (k3)"),
           ("response_len", "response tokens"))


def router_rows(path: str) -> list[dict]:
    """The router.snapshot() lines of a router.jsonl log; errors name the file and line."""
    rows = read_log(path, log=lambda msg: print(msg, file=sys.stderr))
    for lineno, row in enumerate(rows, 1):
        for key in ("step", "topics", "regions"):
            if not isinstance(row, dict) or key not in row:
                raise ValueError(f"{path}: row {lineno}: field {key!r} is missing (expected a router snapshot)")
    if not rows:
        raise ValueError(f"{path}: no router snapshots")
    return rows


def plot_metrics(plt, rows: list[dict], out: str) -> None:
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.6 * len(METRICS), 3), layout="constrained")
    steps = [r["step"] for r in rows]
    for ax, (key, title) in zip(axes, METRICS):
        ax.plot(steps, [r.get(key, float("nan")) for r in rows], lw=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step", fontsize=8)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}: {len(METRICS)} panels over {len(rows)} steps")


def plot_router(plt, rows: list[dict], out: str) -> None:
    panels = [(kind, name) for kind in ("topics", "regions")
              for name in dict.fromkeys(n for r in rows for n in r[kind])]
    langs = list(next(iter(rows[0]["topics"].values())))
    ncols = 3
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 3.6 * nrows), squeeze=False, layout="constrained")
    vmax = max(p for r in rows for kind in ("topics", "regions") for d in r[kind].values() for p in d.values())
    for ax, (kind, name) in zip(axes.flat, panels):
        grid = [[r[kind][name][l] if name in r[kind] else float("nan") for r in rows] for l in langs]
        im = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=vmax,
                       extent=(rows[0]["step"] - 0.5, rows[-1]["step"] + 0.5, len(langs) - 0.5, -0.5))
        ax.set_title(("region: " if kind == "regions" else "") + name, fontsize=10)
        ax.set_yticks(range(len(langs)), langs, fontsize=7)
        ax.set_xlabel("training step", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.6, label="routing probability softmax(z / tau)")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}: {len(panels)} heatmaps over {len(rows)} router updates")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Plot an LRPO run (metrics.jsonl, router.jsonl).")
    p.add_argument("run", help="the run's --out_dir")
    p.add_argument("--to", help="directory for the PNGs (default: the run's directory)")
    args = p.parse_args(argv)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot.py needs matplotlib, an optional dependency: pip install matplotlib")
    to = args.to or args.run
    os.makedirs(to, exist_ok=True)
    try:
        metrics = read_log(os.path.join(args.run, "metrics.jsonl"), log=lambda m: print(m, file=sys.stderr))
        router = router_rows(os.path.join(args.run, "router.jsonl"))
    except (OSError, ValueError) as e:
        sys.exit(f"plot.py: {e}")
    if not metrics:
        sys.exit(f"plot.py: {args.run}/metrics.jsonl has no steps yet")
    plot_metrics(plt, metrics, os.path.join(to, "metrics.png"))
    plot_router(plt, router, os.path.join(to, "router.png"))


if __name__ == "__main__":
    main()
