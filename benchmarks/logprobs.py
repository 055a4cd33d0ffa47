"""
`python bench.py logprobs`: grpo.token_logprobs (row chunks, fp32 per chunk) against the naive
log_softmax().gather() on (R, V) fp32 logits, time and peak memory, forward and forward+backward.
"""
import torch

from benchmarks.timing import median_time, peak_rss_in_child, peak_rss_since_reset, reset_peak_rss, table


def _inputs(R, V, grad=False):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(R, 1, V, generator=g).requires_grad_(grad)       # (R, 1, V) fp32
    targets = torch.randint(0, V, (R, 1), generator=g)
    return logits, targets


def _naive(logits, targets):
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[..., None]).squeeze(-1)


def _child(q, method, R, V, backward):
    from grpo import token_logprobs
    fn = token_logprobs if method == "chunked" else _naive
    logits, targets = _inputs(R, V, grad=backward)
    base = reset_peak_rss()
    logp = fn(logits, targets)
    if backward:
        logp.sum().backward()
    q.put(peak_rss_since_reset() - base)


def main(argv=(), R: int = 8192, V: int = 32768):
    from grpo import token_logprobs
    logits, targets = _inputs(R, V, grad=True)
    rows = []
    for backward in (False, True):
        def run(fn):
            if not backward:
                with torch.no_grad():
                    return fn(logits, targets)
            fn(logits, targets).sum().backward()
        t_naive = median_time(lambda: run(_naive), repeat=3 + 2 * (not backward))
        t_chunk = median_time(lambda: run(token_logprobs), repeat=3 + 2 * (not backward))
        m_naive, m_chunk = (peak_rss_in_child(_child, m, R, V, backward) for m in ("naive", "chunked"))
        rows.append({"pass": "forward+backward" if backward else "forward",
                     "naive ms": f"{t_naive * 1e3:.0f}", "chunked ms": f"{t_chunk * 1e3:.0f}",
                     "time ratio": f"{t_chunk / t_naive:.2f}x", "naive peak extra MiB": f"{m_naive:.0f}",
                     "chunked peak extra MiB": f"{m_chunk:.0f}", "memory ratio": f"{m_chunk / m_naive:.3f}x"})
    print(f"(B*T, V) = ({R}, {V}) fp32, logits {R * V * 4 / 2**20:.0f} MiB; {torch.get_num_threads()} threads; "
          "peak extra = resident-memory high-water mark above the inputs, each in a fresh process")
    print(table(rows))
    print("forward+backward includes the logits' own gradient (one logits-sized tensor) in both columns.")
