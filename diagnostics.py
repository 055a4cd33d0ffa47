"""
What the rollouts of a training step did: the figures of its metrics.jsonl row (group health,
cut and off-language rollouts, per-language means), samples of whole groups for rollouts.jsonl,
and greedy validation on held-out items.

    from diagnostics import response_cut, rollout_sums, step_row
    cut = response_cut(resp, rmask, stop_ids)                                 # (N,) bool
    sums = rollout_sums(out, targets, rmask.sum(1), cut, group_size=K, languages=LANGUAGES)
    tot = dict(zip(sums, all_reduce_sum(torch.tensor(list(sums.values()), dtype=torch.float64)).tolist()))
    row.update(step_row(tot, LANGUAGES))          # reward, ..., zero_std_groups, ..., langs

Decisions:
1. Every figure is a sum over this rank's rollouts, so the one all-reduce of the step's sums that a
   trainer makes for its log gives the global figures: no collective is added (validation adds one,
   on its own steps).
2. Group figures count prompts (each a GRPO group of K): `zero_std_groups`, whose K rewards are all
   equal (advantage 0: no gradient from them), and `gated_groups`, all K scored 0 by the language
   gate. Rollout figures count rollouts: `truncated`, cut at the token limit (no stop token);
   `off_language`, detected in another language than the one asked for (no language counts too).
3. Per language (`langs`): by the language asked for (the router's pick, or a Translation item's
   target), its share of the step's rollouts and its mean reward, r_lang and length; a language
   with no rollout that step is absent, not 0.
4. rollouts.jsonl rows (runlog.py writes them) are whole groups, K rows side by side, with what
   the loss used: the reward and the group advantage (grpo.group_advantages).
5. Validation is greedy, one answer per held-out item, asked in the item's own language as
   training asks (Translation items: their target language), scored like a rollout.
"""
import torch

from data.prompts import build_prompt
from grpo import all_reduce_sum, group_advantages
from reward import compute_rewards
from sampler import generate_rollouts

MEANS = ("reward", "r_qual", "r_lang", "sim")


def response_cut(resp: torch.Tensor, rmask: torch.Tensor, stop_ids: list[int]) -> torch.Tensor:
    """(N, R) responses and mask -> (N,) bool: no stop token among the response's tokens (it ran to
    the token limit)."""
    stop = torch.isin(resp, torch.as_tensor(stop_ids, dtype=resp.dtype, device=resp.device))
    return ~(stop & rmask.bool()).any(1)


def rollout_sums(out: dict, targets: list[str], lengths: torch.Tensor, cut: torch.Tensor,
                 group_size: int, languages, masked: int = 0) -> dict[str, float]:
    """This rank's sums for the step's row (Decisions 1-3). out: reward.compute_rewards' dict for
    N rollouts in group-major order; targets: the N languages asked for; lengths, cut: (N,)."""
    K, N = group_size, len(targets)
    r = out["reward"].view(-1, K)                                          # (P, K)
    sums = {**{k: float(out[k].sum()) for k in MEANS}, "n": N, "response_tokens": float(lengths.sum()),
            "missing_pairs": out["missing_pairs"], "no_language": out["no_language"], "groups": N // K,
            "zero_std_groups": int((r == r[:, :1]).all(1).sum()),
            "gated_groups": int((out["r_lang"].view(-1, K) == 0).all(1).sum()),
            "truncated": int(cut.sum()), "masked_truncated": masked,
            "off_language": sum(d != t for d, t in zip(out["detected"], targets))}
    asked = torch.tensor([languages.index(t) for t in targets])            # (N,)
    for name, x in (("n", torch.ones(N)), ("reward", out["reward"]), ("r_lang", out["r_lang"]),
                    ("len", lengths.float().cpu())):
        per = torch.zeros(len(languages), dtype=torch.float64).index_add_(0, asked, x.double().cpu())
        sums.update({f"{l}.{name}": v for l, v in zip(languages, per.tolist())})
    return sums


def step_row(tot: dict, languages) -> dict:
    """Means and fractions from the sums over ranks (rollout_sums' keys) -> the row's fields."""
    n, groups = tot["n"], tot["groups"]
    langs = {l: {"n": int(tot[f"{l}.n"]), "share": tot[f"{l}.n"] / n,
                 **{k: tot[f"{l}.{k}"] / tot[f"{l}.n"] for k in ("reward", "r_lang", "len")}}
             for l in languages if tot[f"{l}.n"]}
    return {**{k: tot[k] / n for k in MEANS}, "response_len": tot["response_tokens"] / n,
            "missing_pairs": int(tot["missing_pairs"]), "no_language": int(tot["no_language"]),
            "zero_std_groups": tot["zero_std_groups"] / groups, "gated_groups": tot["gated_groups"] / groups,
            "truncated": tot["truncated"] / n, "off_language": tot["off_language"] / n,
            "masked_truncated": int(tot["masked_truncated"]), "langs": langs}


# ----------------------------------------------------------------------------- rollouts.jsonl

def sample_rows(step: int, batch: list[dict], targets: list[str], request: str, texts: list[str],
                out: dict, lengths: torch.Tensor, cut: torch.Tensor, group_size: int,
                groups: range) -> list[dict]:
    """rollouts.jsonl rows of the groups `groups` (indices into this rank's batch), K rows each."""
    K = group_size
    A = group_advantages(out["reward"], K).tolist()
    rows = []
    for j in groups:
        it = batch[j]
        for k in range(K):
            i = j * K + k
            rows.append({"step": step, "id": it["id"], "topic": it["topic"], "region": it["region"],
                         "prompt_lang": it["lang"], "lang": targets[i], "request": request, "k": k,
                         "response": texts[i], "detected": out["detected"][i],
                         **{key: float(out[key][i]) for key in ("sim", "r_qual", "r_lang", "reward")},
                         "advantage": A[i], "length": int(lengths[i]), "stopped": not bool(cut[i])})
    return rows


# ----------------------------------------------------------------------------- validation

def validate(model, tok, items: list[dict], encoder, calib, *, how: str, max_new_tokens: int,
             batch_size: int, languages, sampler: str = "ours", calibration: str = "mean",
             lam: float = 1.0, k: float | None = None, ub: bool = False) -> dict:
    """Greedy answers to this rank's share of held-out items (data.prompts.prepare_items' output),
    scored as rollouts are (Decision 5); call inside grpo.unsharded(model). Collective: sums over
    ranks. -> {"reward", "r_qual", "r_lang", "n", "langs": {lang: {"n", "reward", "r_lang"}}}."""
    keys = [f"{l}.{s}" for l in languages for s in ("n", "reward", "r_lang")]
    sums = dict.fromkeys(["n", *MEANS[:3], *keys], 0.0)
    if items:
        prompts = [build_prompt(tok, it["question"], it["gate_lang"], how) for it in items]
        ids, am, P = generate_rollouts(model, tok, prompts, max_new_tokens, batch_size=batch_size,
                                       sampler=sampler, greedy=True)
        texts = tok.batch_decode(ids[:, P:], skip_special_tokens=True)
        gate = [it["gate_lang"] for it in items]
        out = compute_rewards(texts, [it["reference"] for it in items], gate, gate, encoder, calib,
                              calibration, lam=lam, k=k, ub=ub, languages=languages)
        sums.update({"n": len(items), **{m: float(out[m].sum()) for m in MEANS[:3]}})
        for i, l in enumerate(gate):
            for s, v in (("n", 1.0), ("reward", out["reward"][i]), ("r_lang", out["r_lang"][i])):
                sums[f"{l}.{s}"] += float(v)
    tot = dict(zip(sums, all_reduce_sum(torch.tensor(list(sums.values()), dtype=torch.float64)).tolist()))
    n = max(tot["n"], 1.0)
    return {**{m: tot[m] / n for m in MEANS[:3]}, "n": int(tot["n"]),
            "langs": {l: {"n": int(tot[f"{l}.n"]), "reward": tot[f"{l}.reward"] / tot[f"{l}.n"],
                          "r_lang": tot[f"{l}.r_lang"] / tot[f"{l}.n"]} for l in languages if tot[f"{l}.n"]}}
