"""
Benchmarks for LRPO, one subcommand each. Figures are always ratios against a baseline measured in
the same run, on the same machine; nothing here is asserted by the tests.

    python bench.py logprobs      # grpo.token_logprobs vs naive log_softmax().gather(), CPU
"""
import argparse
import gc
import os
import platform
import sys
import threading
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


def _logprobs_inputs(R, V, grad=False):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(R, 1, V, generator=g).requires_grad_(grad)       # (R, 1, V) fp32
    targets = torch.randint(0, V, (R, 1), generator=g)
    return logits, targets


def _naive_logprobs(logits, targets):
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[..., None]).squeeze(-1)


def _logprobs_child(q, method, R, V, backward):
    from grpo import token_logprobs
    fn = token_logprobs if method == "chunked" else _naive_logprobs
    logits, targets = _logprobs_inputs(R, V, grad=backward)
    base = reset_peak_rss()
    logp = fn(logits, targets)
    if backward:
        logp.sum().backward()
    q.put(peak_rss_since_reset() - base)


def bench_logprobs(R: int = 8192, V: int = 32768):
    """grpo.token_logprobs (row chunks, fp32 per chunk) vs log_softmax().gather() on (R, V) fp32."""
    from grpo import token_logprobs
    logits, targets = _logprobs_inputs(R, V)
    mib = R * V * 4 / 2**20
    rows = []
    with torch.no_grad():
        t_naive = median_time(lambda: _naive_logprobs(logits, targets))
        t_chunk = median_time(lambda: token_logprobs(logits, targets))
    m_naive = peak_rss_in_child(_logprobs_child, "naive", R, V, False)
    m_chunk = peak_rss_in_child(_logprobs_child, "chunked", R, V, False)
    rows.append({"pass": "forward", "naive ms": f"{t_naive * 1e3:.0f}", "chunked ms": f"{t_chunk * 1e3:.0f}",
                 "time ratio": f"{t_chunk / t_naive:.2f}x", "naive peak extra MiB": f"{m_naive:.0f}",
                 "chunked peak extra MiB": f"{m_chunk:.0f}", "memory ratio": f"{m_chunk / m_naive:.3f}x"})
    lg = logits.requires_grad_()
    t_naive = median_time(lambda: _naive_logprobs(lg, targets).sum().backward(), repeat=3)
    t_chunk = median_time(lambda: token_logprobs(lg, targets).sum().backward(), repeat=3)
    m_naive = peak_rss_in_child(_logprobs_child, "naive", R, V, True)
    m_chunk = peak_rss_in_child(_logprobs_child, "chunked", R, V, True)
    rows.append({"pass": "forward+backward", "naive ms": f"{t_naive * 1e3:.0f}", "chunked ms": f"{t_chunk * 1e3:.0f}",
                 "time ratio": f"{t_chunk / t_naive:.2f}x", "naive peak extra MiB": f"{m_naive:.0f}",
                 "chunked peak extra MiB": f"{m_chunk:.0f}", "memory ratio": f"{m_chunk / m_naive:.3f}x"})
    print(f"(B*T, V) = ({R}, {V}) fp32, logits {mib:.0f} MiB; {torch.get_num_threads()} threads; "
          "peak extra = resident-memory high-water mark above the inputs, each in a fresh process")
    print(table(rows))
    print("forward+backward includes the logits' own gradient (one logits-sized tensor) in both columns.")


# --- dispatch: each subcommand is a function above this line, registered here ---
SUBCOMMANDS = {
    "logprobs": bench_logprobs,
}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=sorted(SUBCOMMANDS), help="which benchmark to run")
    args = parser.parse_args()
    print(f"# bench {args.what} on {machine()}")
    SUBCOMMANDS[args.what]()
