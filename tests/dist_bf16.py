"""
Run by tests/test_lrpo.py as `torchrun --standalone --nproc_per_node=2 tests/dist_bf16.py POLICY_DIR OUT_DIR`.

The path a GPU run takes, on CPU under gloo: FSDP2 with MixedPrecisionPolicy(bf16 compute, fp32
reduce), as checkpoint.load_policy(shard=True, mixed_precision=True) builds it.
1. Two AdamW steps of the GRPO loss on the same fixed batch (each rank half of it) in fp32 and in
   bf16: the loss and the gradient norm of every step agree within the tolerance below; fp32 with
   gradient checkpointing (load_policy(grad_ckpt=True), FSDP2 hooks inside the recomputed layer)
   agrees with fp32 to 1e-6.
2. checkpoint.save_checkpoint then load_policy + restore: one more step from the reloaded bf16 model
   equals one more step of the model that never stopped, bit for bit (exact resume in bf16).
Any failure raises, so torchrun exits non-zero.
"""
import sys

import torch
import torch.distributed as dist

from checkpoint import load_policy, load_trainer_state, restore, save_checkpoint
from grpo import grpo_loss, response_logits, token_logprobs

LOSS_ATOL, GRAD_RTOL = 1e-3, 1e-2      # bf16 keeps ~3 significant digits; measured: 2e-4 and 1.3e-3


def step(model, opt, ids, am, A, mask, old, ref, num_tokens, world):
    """One optimizer step; -> (loss summed over ranks, gradient norm)."""
    logits = response_logits(model, ids, am, mask.shape[1])                # (b, R, V), bf16 or fp32
    logp = token_logprobs(logits, ids[:, -mask.shape[1]:])                   # (b, R) fp32
    loss, _ = grpo_loss(logp, old, ref, A, mask, beta=0.04, num_tokens=num_tokens)
    (loss * world).backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")).full_tensor()
    opt.step()
    opt.zero_grad(set_to_none=True)
    total = loss.detach().clone()
    dist.all_reduce(total)
    return total.item(), norm.item()


def main(policy_dir: str, out_dir: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(policy_dir)
    g = torch.Generator().manual_seed(0)                                    # the same batch on every rank
    B, L, R, V = 8, 20, 12, len(tok)
    ids = torch.randint(3, V, (B, L), generator=g)
    am = torch.ones(B, L, dtype=torch.long)
    am[::2, :3] = 0                                                          # some left padding
    mask = (torch.rand(B, R, generator=g) > 0.2).float()
    A = torch.randn(B, generator=g)
    rows = slice(rank * B // world, (rank + 1) * B // world)
    with torch.no_grad():                                   # fixed old / ref log-probs, from fp32
        logp0 = token_logprobs(response_logits(load_policy(policy_dir, "cpu"), ids[rows], am[rows], R),
                               ids[rows, -R:])                               # (b, R)
    old, ref = logp0 + 0.3 * torch.randn(logp0.shape, generator=g), logp0 - 0.1   # some ratios clip
    args = (ids[rows], am[rows], A[rows], mask[rows], old, ref, mask.sum().item(), world)

    runs = {}
    for name, bf16, ckpt in (("fp32", False, False), ("fp32, checkpointed", False, True), ("bf16", True, False)):
        torch.manual_seed(0)
        model = load_policy(policy_dir, "cpu", shard=True, mixed_precision=bf16, grad_ckpt=ckpt).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        runs[name] = [step(model, opt, *args) for _ in range(2)]
    diff = max(abs(a - b) for x, y in zip(runs["fp32"], runs["fp32, checkpointed"]) for a, b in zip(x, y))
    if rank == 0:
        print(f"gradient checkpointing: max |loss or grad norm difference| {diff:.1e}", flush=True)
    assert diff < 1e-6, runs                                  # recomputation is the same arithmetic
    for (l32, n32), (l16, n16) in zip(runs["fp32"], runs["bf16"]):
        if rank == 0:
            print(f"loss fp32 {l32:+.6f} bf16 {l16:+.6f} | grad norm fp32 {n32:.6f} bf16 {n16:.6f} "
                  f"(rel {abs(n16 - n32) / n32:.2e})", flush=True)
        assert abs(l16 - l32) <= LOSS_ATOL and abs(n16 - n32) <= GRAD_RTOL * n32, (l16, l32, n16, n32)

    # exact resume in bf16: checkpoint after the two steps, reload, compare one more step
    save_checkpoint(out_dir, 2, model, tok, opt, {"note": "dist_bf16"})
    ckpt = f"{out_dir}/ckpt-2"
    again = load_policy(ckpt, "cpu", shard=True, mixed_precision=True).train()
    opt2 = torch.optim.AdamW(again.parameters(), lr=1e-3, weight_decay=0.01)
    assert restore(load_trainer_state(ckpt), again, opt2, rank) == 2
    want, got = step(model, opt, *args), step(again, opt2, *args)
    assert want == got, (want, got)
    if rank == 0:
        print(f"resumed bf16 step identical: loss {got[0]:+.6f} grad norm {got[1]:.6f}", flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
