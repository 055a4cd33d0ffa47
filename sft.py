"""
Warm-start SFT (paper §5.4, Table 5): teach the policy to answer in the language a request asks for.

    python sft.py --model Qwen/Qwen2.5-1.5B-Instruct --sft_file data/sft.jsonl --out_dir out/sft
    torchrun --standalone --nproc_per_node=8 sft.py --model ... --sft_file data/sft.jsonl --out_dir out/sft
    python lrpo.py ... --sft_file data/sft.jsonl --sft_steps 100     # the same warm start, then LRPO

Decisions:
1. Data: the records {question, lang (the answer's language), answer} of --sft_file, each asked
   with the language request the RL run uses (data/prompts.py). Never the RL items: their
   references are what the reward compares rollouts with. The paper's set is 420 Aya prompts x 2
   target languages answered by gpt-oss-20b (data/README.md builds one).
2. With --sft_parallel (the tiny demo) also the parallel set's cross-lingual pairs: an item's text in
   language a, asked for in b -> its text in b. A random tiny policy must first learn what each
   language looks like before a tag can mean anything to it.
3. Loss: the NLL of the answer tokens (the end of turn included), token-mean over the global batch
   (all ranks), times the world size because FSDP averages gradients (as grpo.py, Decision 4).
4. Each step draws sft_batch examples (over all ranks) with replacement, from a generator seeded by
   `seed`. Prompts longer than max_prompt_len are skipped and answers cut to max_new_tokens, both
   counted and printed.
5. A killed warm start restarts from zero: it is short (the paper's 840 examples), and its result
   is written once, at the end, atomically; a resumed lrpo.py run reuses it.
6. The command checks everything before a model loads: --out_dir can be written (data/outputs.py),
   the records, and the policy directory (a chat template, an EOS token, weights). An existing
   --out_dir is refused; with --overwrite it is replaced if, and only if, it is a model directory
   (config.json, safetensors, tokenizer files, nothing else), so a run directory or `--out_dir .`
   is never emptied. Every numeric flag is range-checked (nan and inf included) by argparse. A
   --out_dir in (or equal to) the directory of a live lrpo.py run is refused, naming the run's PID
   (runlock.py), and no run can start there while sft.py writes.
"""
import argparse
import contextlib
import os

import torch
from tqdm import tqdm

from grpo import all_reduce_sum, init_distributed, response_logits, token_logprobs


def sft_examples(tok, records: list[dict], how: str, max_prompt_len: int, max_new_tokens: int,
                 parallel: dict[str, dict[str, str]] | None = None, log=print) -> list[tuple[list, list]]:
    """(prompt ids, answer ids) per example (Decisions 1, 2, 4); records {question, lang, answer},
    parallel {id: {lang: text}}."""
    from data.prompts import answer_text, build_prompt
    pairs = [(r["question"], r["lang"], r["answer"]) for r in records]
    for texts in (parallel or {}).values():
        pairs += [(texts[a], b, texts[b]) for a in texts for b in texts if a != b]
    examples, n_long, n_cut = [], 0, 0
    for question, lang, answer in pairs:
        prompt = tok(build_prompt(tok, question, lang, how), add_special_tokens=False)["input_ids"]
        target = tok(answer_text(tok, question, lang, answer, how), add_special_tokens=False)["input_ids"]
        if len(prompt) > max_prompt_len:
            n_long += 1
            continue
        n_cut += len(target) > max_new_tokens
        examples.append((prompt, target[:max_new_tokens]))
    log(f"sft: {len(examples)} examples ({len(records)} records, {len(pairs) - len(records)} parallel pairs); "
        f"skipped {n_long} with prompts over {max_prompt_len} tokens; cut {n_cut} answers to {max_new_tokens} tokens")
    if not examples:
        raise ValueError("sft: no example fits --max_prompt_len")
    return examples


def pack(examples: list[tuple[list, list]], pad_id: int, device) -> tuple[torch.Tensor, ...]:
    """Left-padded prompt + answer: ids, attention mask, answer mask, each (b, L)."""
    L = max(len(p) + len(a) for p, a in examples)
    rows = [[pad_id] * (L - len(p) - len(a)) + p + a for p, a in examples]
    attn = [[0] * (L - len(p) - len(a)) + [1] * (len(p) + len(a)) for p, a in examples]
    ans = [[0] * (L - len(a)) + [1] * len(a) for p, a in examples]
    return tuple(torch.tensor(x, device=device) for x in (rows, attn, ans))


def warm_start(model, tok, examples: list[tuple[list, list]], *, steps: int, lr: float, batch: int,
               weight_decay: float = 0.01, seed: int = 0, bf16_autocast: bool = False,
               show: bool = True) -> None:
    """`steps` AdamW steps of SFT on `examples` (Decisions 3, 4), in place; every rank calls it."""
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    if steps < 1 or lr <= 0 or batch < world or batch % world:
        raise ValueError(f"sft: steps {steps} >= 1, lr {lr} > 0 and a batch {batch} divisible by the "
                         f"world size {world} are needed")
    device = next(model.parameters()).device
    model.train()                                                       # gradient checkpointing, if on
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16_autocast else contextlib.nullcontext()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    bar = tqdm(range(steps), desc="sft", disable=not show)
    for _ in bar:
        pick = torch.randint(len(examples), (batch,), generator=gen)[rank::world]
        ids, attn, ans = pack([examples[i] for i in pick.tolist()], tok.pad_token_id, device)  # (b, L)
        n_resp = int(ans.sum(1).max())
        with amp:
            logits = response_logits(model, ids, attn, n_resp)                # (b, n_resp, V)
        logp = token_logprobs(logits, ids[:, -n_resp:])                       # (b, n_resp) fp32
        n_tok = all_reduce_sum(ans.sum().float().cpu())
        loss = -(logp * ans[:, -n_resp:]).sum() / n_tok
        (loss * world).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        bar.set_postfix(nll=f"{float(all_reduce_sum(loss.detach().cpu())):.3f}")


def main(argv=None) -> None:
    from data.records import ranged
    INT1 = ranged(int, lo=1)
    p = argparse.ArgumentParser(description="Warm-start SFT (see the module docstring)")
    p.add_argument("--model", required=True, help="policy: hub name or local HF directory")
    p.add_argument("--sft_file", required=True, help="SFT records {id, question, lang, answer} (JSON Lines)")
    p.add_argument("--out_dir", required=True, help="where the warm-started model directory is written (Decision 6)")
    p.add_argument("--overwrite", action="store_true", help="replace --out_dir if it holds a model directory (only then)")
    p.add_argument("--steps", type=INT1, default=100, help="optimizer steps (>= 1)")
    p.add_argument("--lr", type=ranged(float, above=0), default=1e-5, help="AdamW learning rate (> 0)")
    p.add_argument("--batch", type=INT1, default=16, help="sequences per step, over all ranks (>= 1, divisible by the world size)")
    p.add_argument("--lang_prompt", default="tag", choices=["tag", "system", "system_en"], help="how the language is asked for")
    p.add_argument("--max_prompt_len", type=INT1, default=512, help="longer prompts are skipped and counted (>= 1)")
    p.add_argument("--max_new_tokens", type=INT1, default=1024, help="answers are cut to this many tokens (>= 1)")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default=None, help="compute dtype (default: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--seed", type=ranged(int, lo=0, hi=2**63 - 1), default=42, help="example sampling seed (>= 0)")
    args = p.parse_args(argv)

    from checkpoint import CheckpointError, load_policy, save_policy
    from data.outputs import check_output
    from data.records import check_policy, load_sft
    from reward import LANGUAGES
    from runlock import RunLocked, lock_dir
    out = os.path.abspath(args.out_dir)
    try:                                                         # Decision 6: all before any model loads
        held = [lock_dir(d, exclusive=False) for d in (out, os.path.dirname(out))]   # noqa: F841 (kept)
        check_output(args.out_dir, directory=True, overwrite=args.overwrite)
        records = load_sft(args.sft_file, LANGUAGES)
        check_policy(args.model)
    except (ValueError, OSError, RunLocked) as e:                # RecordError, OutputError, a live run
        raise SystemExit(f"sft.py: {e}")
    rank, world, device = init_distributed()
    if args.batch % world:
        raise SystemExit(f"sft.py: --batch {args.batch} is not divisible by the world size {world}")
    bf16 = (args.dtype or ("bf16" if device.type == "cuda" else "fp32")) == "bf16"
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(args.model)
    tok.pad_token = tok.pad_token or tok.eos_token
    try:
        examples = sft_examples(tok, records, args.lang_prompt, args.max_prompt_len, args.max_new_tokens,
                                log=print if rank == 0 else lambda *a: None)
    except ValueError as e:
        raise SystemExit(f"sft.py: {e}")
    model = load_policy(args.model, device, shard=world > 1, mixed_precision=bf16)
    warm_start(model, tok, examples, steps=args.steps, lr=args.lr, batch=args.batch, seed=args.seed,
               bf16_autocast=bf16 and world == 1, show=rank == 0)
    try:
        save_policy(args.out_dir, model, tok)
    except CheckpointError as e:
        raise SystemExit(f"sft.py: {e}")
    if rank == 0:
        print(f"wrote {args.out_dir}")
    if world > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
