"""
Timing and memory helpers shared by the benchmarks (a leaf: it imports nothing of the project).

    from benchmarks.timing import machine, median_time, table
    print(machine()); print(table([{"path": "x", "ms": f"{1e3 * median_time(fn):.1f}"}]))

Decisions:
1. Figures are medians after one warm-up call, and always reported beside a baseline measured in
   the same run: on shared machines absolute times drift, ratios much less.
2. CPU memory is the resident-set high-water mark (Linux /proc) above the level after set-up,
   measured in a fresh process so earlier allocations cannot hide a peak.
"""
import os
import platform
import time

import torch


def machine() -> str:
    """One line naming the machine, printed above every table."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def table(rows: list[dict]) -> str:
    """A markdown table from a list of dicts sharing keys."""
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    out += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(out)


def median_time(fn, repeat: int = 5) -> float:
    """Median wall time of fn() in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def peak_rss_in_child(fn, *args) -> float:
    """Run fn(queue, *args) in a fresh process and return what it puts on the queue: its peak
    resident memory in MiB above the level after its own set-up (see reset_peak_rss)."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(q, *args))
    p.start()
    extra = q.get()
    p.join()
    return extra


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        line = next(l for l in f if l.startswith(field + ":"))
    return int(line.split()[1]) / 1024.0                                  # kB -> MiB


def reset_peak_rss() -> float:
    """Reset this process's resident-memory high-water mark (Linux); return the current RSS in MiB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mib("VmRSS")


def peak_rss_since_reset() -> float:
    return _status_mib("VmHWM")
