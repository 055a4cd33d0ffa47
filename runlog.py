"""
A run's logs, written by rank 0 as the run goes: metrics.jsonl (one row per training step),
router.jsonl (the router after each update), rollouts.jsonl (samples of whole rollout groups) and,
when asked, Weights & Biases.

    from runlog import RunLog
    log = RunLog(out_dir, step, router.snapshot(), wandb_project="", config=vars(args))  # rank 0
    log.write(row, router.snapshot() if updated else None, rollout_rows)              # each step

Decisions:
1. Each line is written and flushed as it comes: a crash loses at most the line in flight, and a
   reader (plot.py, checkpoint.read_log) drops a half-written last line. A resumed run first drops
   the rows after its checkpoint's step in every file (they are written again), so no step appears
   twice.
2. rollouts.jsonl is rotated at 64 MiB (rollouts.1.jsonl, then .2; older ones are dropped): samples
   take at most about 192 MiB, however long the run.
3. Weights & Biases gets the metrics.jsonl row itself, under one run id per out_dir (a hash of its
   absolute path), so a resumed run continues the same run; wandb is imported only when asked.
"""
import hashlib
import json
import os

from checkpoint import start_logs, truncate_log

ROLLOUT_BYTES, ROLLOUT_FILES = 64 * 2 ** 20, 3             # Decision 2


class RunLog:
    """The logs of the run directory `out_dir`, continued at `step` (0: a fresh run, whose
    router.jsonl starts with `first`, the initial router). Rank 0 only."""

    def __init__(self, out_dir: str, step: int, first: dict, wandb_project: str = "",
                 config: dict | None = None, log=print):
        self.metrics, self.router = start_logs(out_dir, step, first, log)
        self.rollouts = [os.path.join(out_dir, "rollouts.jsonl" if i == 0 else f"rollouts.{i}.jsonl")
                         for i in range(ROLLOUT_FILES)]
        for path in self.rollouts:
            if os.path.exists(path):
                truncate_log(path, step, log)
        self.wandb = None
        if wandb_project:
            import wandb
            run_id = hashlib.sha256(os.path.abspath(out_dir).encode()).hexdigest()[:16]
            wandb.init(project=wandb_project, id=run_id, resume="allow", config=config, dir=out_dir)
            self.wandb = wandb

    def write(self, row: dict, router: dict | None = None, rollouts: list[dict] = ()) -> None:
        """One step: its metrics row, the router snapshot when it was updated, rollout samples."""
        _append(self.metrics, [row])
        if router is not None:
            _append(self.router, [router])
        if rollouts:
            path = self.rollouts[0]
            if os.path.exists(path) and os.path.getsize(path) > ROLLOUT_BYTES:       # Decision 2
                for older, newer in zip(self.rollouts[:0:-1], self.rollouts[-2::-1]):  # .1 -> .2, base -> .1
                    if os.path.exists(newer):
                        os.replace(newer, older)
            _append(path, rollouts)
        if self.wandb is not None:
            self.wandb.log(row, step=row["step"])


def _append(path: str, rows) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
