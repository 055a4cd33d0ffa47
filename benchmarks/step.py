"""
`python bench.py step`: where one `lrpo.py --tiny` training step spends its time (generate /
reward / train), from the metrics of a 2-rank run.
"""
import json
import os
import subprocess
import sys
import tempfile

from benchmarks.timing import table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=(), steps: int = 10):
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "lrpo.py",
               "--tiny", "--sft_steps", "0", "--max_steps", str(steps), "--out_dir", d]
        subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True, capture_output=True, cwd=ROOT)
        rows = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))][1:]   # step 1 warms up
    med = {k: sorted(r[k] for r in rows)[len(rows) // 2] for k in ("t_generate", "t_reward", "t_train")}
    total = sum(med.values())
    print(f"lrpo.py --tiny under torchrun --nproc_per_node=2: median over steps 2..{steps} "
          f"(8 prompts x K=8 rollouts, 24 new tokens, rank 0's clock)")
    print(table([{"stage": k[2:], "s per step": f"{v:.3f}", "share": f"{100 * v / total:.0f}%"} for k, v in med.items()]
                + [{"stage": "total", "s per step": f"{total:.3f}", "share": "100%"}]))
