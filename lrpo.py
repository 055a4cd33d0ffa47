"""
LRPO training: GRPO whose rollouts are generated in languages chosen by a learned router.

    torchrun --standalone --nproc_per_node=2 lrpo.py --tiny        # CPU demo under 2-rank FSDP2, ~3 min
    python lrpo.py --tiny                                          # the same in one process
    torchrun --standalone --nproc_per_node=1 lrpo.py --train_file data/train.jsonl   # 1 GPU
    torchrun --standalone --nproc_per_node=8 lrpo.py --train_file data/train.jsonl \\
        --calib_file data/calib.json                               # the paper's setup, 8 GPUs
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \\
        lrpo.py ...                                                # multi-node (shared filesystem)
    torchrun ... lrpo.py ... --resume auto                         # continue from the newest ckpt-*

How LRPO departs from GRPO (paper §3, SPEC §1):
1. Route: of the K rollouts per prompt, K_on stay in the prompt's language; each other one is drawn
   from the router's softmax((A[t] + 1[regional] B[g]) / tau), or uniformly with probability eps.
2. Generate: the target language is requested with a plain-text tag `\\n<|out_lang_xx|>` after the
   question (or a system prompt with --lang_prompt system).
3. Reward: mmBERT similarity to the reference, calibrated for the (reference, rollout) language
   pair, times a language-ID gate: r = r_qual * r_lang, in [0, 1].
4. The GRPO group therefore mixes languages: advantages compare answers across languages.
5. Router: every M steps, an EMA of the z-scored mean reward of each (topic, region, language)
   bucket moves A and B; tau and eps anneal every step. Ranks all-reduce the buckets.

Decisions:
1. One optimizer step per batch (the release's setting), so the old policy is the current one:
   old_logp = logp.detach() (ratio 1 in value, the exact gradient) and no forward pass is spent on
   it. The reference model (the initial or warm-started policy, frozen, sharded) runs only if beta > 0.
2. Micro-batches hold whole groups (--micro_prompts prompts x K), so the fused kernel can form the
   advantages itself; the loss is normalised by the response tokens of the global batch and
   multiplied by the world size to undo FSDP's gradient averaging (grpo.py, decision 4).
3. GPUs run under torchrun (one GPU too): FSDP2 with bf16 compute and fp32 master weights and
   reduction. `python lrpo.py` is the one-process fp32 path (CPU).
4. Checkpoints hold what an exact resume needs: model, optimizer, router (with its buffer), every
   rank's RNG and the step; the data order is a function of (seed, step). Same world size only.
5. Prompts longer than --max_prompt_len are skipped and counted, never truncated (the tag is at
   the end). --tiny sets the flags not given on the command line (the measured CPU recipe).
"""
import argparse
import glob
import hashlib
import json
import os
import shutil
import sys
import time
from datetime import timedelta

import torch
import torch.distributed as dist
from tqdm import tqdm

from calibrate import CalibrationTable, build_table, group_parallel, load_parallel
from data.records import load_train
from grpo import (LOSS_AGGS, all_reduce_sum, full_state_dict, generate_rollouts, policy_loss,
                  response_logits, shard_model, token_logprobs)
from reward import LANGUAGE_NAMES, LANGUAGES, Encoder, compute_rewards, detect_language
from router import MODES, REGIONS, TOPICS, LanguageRouter

# ----------------------------------------------------------------------------- arguments
p = argparse.ArgumentParser(description="LRPO training (see the module docstring for commands)")
g = p.add_argument_group("model")
g.add_argument("--model", default="Qwen/Qwen2.5-1.5B-Instruct", help="policy: hub name or local HF directory")
g.add_argument("--encoder", default="jhu-clsp/mmBERT-small", help="reward encoder (mmBERT): hub name or local directory")
g.add_argument("--tiny", action="store_true", help="CPU demo: build a tiny tokenizer, Qwen2 policy and ModernBERT encoder from configs, train on data/sample")
g = p.add_argument_group("data")
g.add_argument("--train_file", default="data/train.jsonl", help="training records (JSON Lines, SPEC §4)")
g.add_argument("--parallel_file", default="data/sample/parallel.jsonl", help="parallel records for the calibration table and the warm-start SFT")
g.add_argument("--calib_file", default="", help="a calibration table written by calibrate.py; default: build one from --parallel_file")
g = p.add_argument_group("rollout")
g.add_argument("--K", type=int, default=8, help="rollouts per prompt (the GRPO group)")
g.add_argument("--prompts_per_step", type=int, default=256, help="prompts per training step, over all ranks")
g.add_argument("--max_prompt_len", type=int, default=512, help="prompt tokens; longer prompts are skipped and counted")
g.add_argument("--max_new_tokens", type=int, default=1024, help="response tokens")
g.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (also used for the log-probs)")
g.add_argument("--top_p", type=float, default=1.0, help="nucleus sampling")
g.add_argument("--gen_batch_size", type=int, default=64, help="sequences per generate() call on a rank")
g.add_argument("--lang_prompt", choices=["tag", "system"], default="tag", help="how the target language is requested")
g = p.add_argument_group("router")
g.add_argument("--router_mode", choices=MODES, default="learned", help="learned = LRPO; monolingual = GRPO; input / english / uniform = fixed routing ablations")
g.add_argument("--K_on", type=int, default=2, help="rollouts kept in the prompt's own language")
g.add_argument("--tau", type=float, nargs=3, default=[1.0, 0.3, 0.999], metavar=("TAU0", "MIN", "DECAY"), help="router temperature schedule")
g.add_argument("--eps", type=float, nargs=3, default=[0.2, 0.0, 0.995], metavar=("EPS0", "MIN", "DECAY"), help="uniform-exploration schedule")
g.add_argument("--no_anneal", action="store_true", help="keep tau0 and eps0 (ablation)")
g.add_argument("--alpha", type=float, default=0.1, help="router EMA rate")
g.add_argument("--update_every", type=int, default=5, help="router update every M steps")
g.add_argument("--bucket_norm", choices=["zscore", "none"], default="zscore", help="normalise bucket means across languages")
g.add_argument("--priors", default="", help="JSON file {topic or region: {lang: weight}}: hand priors instead of the uniform init (ablation)")
g = p.add_argument_group("reward")
g.add_argument("--calibration", choices=["mean", "quantile", "none"], default="mean", help="cross-lingual calibration (none = the collapse ablation)")
g.add_argument("--cal_lambda", type=float, default=1.0, help="mean calibration strength lambda")
g.add_argument("--cal_shrink", type=float, default=None, help="shrinkage k: lambda = n / (n + k)")
g.add_argument("--scale_rewards", choices=["group", "none"], default="group", help="group: (r - mean) / std; none: Dr.GRPO's r - mean")
g = p.add_argument_group("optimisation")
g.add_argument("--lr", type=float, default=1e-6, help="AdamW learning rate (constant)")
g.add_argument("--weight_decay", type=float, default=0.01, help="AdamW weight decay")
g.add_argument("--grad_clip", type=float, default=1.0, help="gradient-norm clip (0 = off)")
g.add_argument("--clip_low", type=float, default=0.2, help="ratio clip below 1")
g.add_argument("--clip_high", type=float, default=0.2, help="ratio clip above 1")
g.add_argument("--beta", type=float, default=0.001, help="k3 KL coefficient (0 = no reference model)")
g.add_argument("--loss_agg", choices=LOSS_AGGS, default="token-mean", help="loss aggregation")
g.add_argument("--micro_prompts", type=int, default=1, help="prompts (x K rollouts) per forward/backward on a rank")
g.add_argument("--epochs", type=int, default=4, help="passes over the training set")
g.add_argument("--max_steps", type=int, default=0, help="stop after this many steps (0 = epochs decide)")
g.add_argument("--sft_steps", type=int, default=0, help="warm-start SFT steps before RL (paper §5.4)")
g.add_argument("--sft_lr", type=float, default=1e-5, help="warm-start SFT learning rate")
g.add_argument("--sft_batch", type=int, default=16, help="warm-start SFT sequences per step, over all ranks")
g.add_argument("--kernel", choices=["auto", "triton", "torch"], default="auto", help="loss path: fused Triton kernel or PyTorch (auto: triton on CUDA)")
g = p.add_argument_group("runtime")
g.add_argument("--out_dir", default="out", help="metrics.jsonl, router.jsonl and ckpt-STEP/ go here")
g.add_argument("--save_every", type=int, default=20, help="checkpoint every N steps (and at the end)")
g.add_argument("--resume", default="", help="'auto': continue from the newest complete checkpoint in --out_dir")
g.add_argument("--seed", type=int, default=42, help="seed (offset by rank for sampling)")
args = p.parse_args()
if args.tiny:  # the measured CPU recipe (SPEC §7): warm start, then a smaller RL learning rate
    tiny = dict(train_file="data/sample/train.jsonl", prompts_per_step=8, max_new_tokens=24,
                max_prompt_len=224, lr=3e-4, sft_steps=1000, sft_lr=3e-3, max_steps=120,
                save_every=40, micro_prompts=4, gen_batch_size=64)
    given = {a.split("=")[0][2:] for a in sys.argv[1:] if a.startswith("--")}
    for k, v in tiny.items():
        if k not in given:                                       # flags on the command line win
            setattr(args, k, v)

# ----------------------------------------------------------------------------- distributed
ddp = int(os.environ.get("RANK", -1)) != -1
if ddp:
    # An hour: rank 0 alone builds the calibration table and writes multi-GB checkpoints.
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timedelta(minutes=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
else:
    rank, world, local_rank = 0, 1, 0
device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
if device.type == "cuda":
    torch.cuda.set_device(device)
master = rank == 0
torch.manual_seed(args.seed + rank)


def print0(*a):
    if master:
        tqdm.write(" ".join(str(x) for x in a))


# ----------------------------------------------------------------------------- validation
def fail(msg):
    raise SystemExit(f"lrpo.py: {msg}")


try:                                                             # every line, before any model loads
    items = load_train(args.train_file, LANGUAGES, TOPICS)
    parallel = load_parallel(args.parallel_file, LANGUAGES) if (args.tiny or args.sft_steps or (
        args.calibration != "none" and not args.calib_file)) else []
except (ValueError, OSError) as e:
    fail(str(e))
if args.calib_file and not os.path.exists(args.calib_file):
    fail(f"--calib_file {args.calib_file} does not exist (build one with calibrate.py)")
if args.K <= args.K_on and args.router_mode == "learned":
    fail(f"--K {args.K} must exceed --K_on {args.K_on}: the router needs free rollouts")
if args.prompts_per_step % world:
    fail(f"--prompts_per_step {args.prompts_per_step} is not divisible by the world size {world}")
P_local = args.prompts_per_step // world
if P_local % args.micro_prompts:
    fail(f"{P_local} prompts per rank do not split into micro-batches of --micro_prompts {args.micro_prompts}")
if args.sft_steps and args.sft_batch % world:
    fail(f"--sft_batch {args.sft_batch} is not divisible by the world size {world}")
if len(items) < args.prompts_per_step:
    fail(f"{args.train_file} has {len(items)} items, fewer than --prompts_per_step {args.prompts_per_step}")
try:
    priors = json.load(open(args.priors, encoding="utf-8")) if args.priors else None
    router = LanguageRouter(LANGUAGES, TOPICS, REGIONS, mode=args.router_mode, K_on=args.K_on,
                            tau=tuple(args.tau), eps=tuple(args.eps), anneal=not args.no_anneal,
                            alpha=args.alpha, update_every=args.update_every,
                            bucket_norm=args.bucket_norm, priors=priors, seed=args.seed)
except (ValueError, OSError) as e:                              # json.JSONDecodeError is a ValueError
    fail(f"{args.priors or 'router settings'}: {e}")
if args.resume not in ("", "auto"):
    fail(f"--resume takes 'auto', got {args.resume!r}")
resume = args.resume == "auto"
ckpts = sorted(glob.glob(os.path.join(args.out_dir, "ckpt-*", "trainer_state.pt")),
               key=lambda f: int(f.split("ckpt-")[-1].split(os.sep)[0]))
if ckpts and not resume:                                         # never mix two runs' files
    fail(f"{args.out_dir} holds checkpoints of an earlier run (newest {os.path.dirname(ckpts[-1])}): "
         "pass --resume auto to continue it, or choose another --out_dir")
resume_dir = os.path.dirname(ckpts[-1]) if ckpts else ""
kernel = args.kernel if args.kernel != "auto" else ("triton" if device.type == "cuda" else "torch")
os.makedirs(args.out_dir, exist_ok=True)

# ----------------------------------------------------------------------------- models
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402  (after validation)
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.disable_progress_bar()
if args.tiny:
    tiny_dir = os.path.join(args.out_dir, "tiny")
    if master and not os.path.exists(os.path.join(tiny_dir, "encoder", "config.json")):
        from data.tiny import build_tiny
        texts = [t for it in items for t in (it["question"], it["reference"])]
        texts += [r["text"] for r in parallel]
        build_tiny(tiny_dir, texts, seed=args.seed)
    if ddp:
        dist.barrier()
    args.model, args.encoder = os.path.join(tiny_dir, "policy"), os.path.join(tiny_dir, "encoder")

sft_dir = os.path.join(args.out_dir, "sft")                      # the warm-started policy = reference
start_dir = sft_dir if resume and os.path.exists(os.path.join(sft_dir, "config.json")) else args.model
tok = AutoTokenizer.from_pretrained(args.model)
tok.padding_side = "left"
if tok.pad_token is None:
    tok.pad_token = tok.eos_token
mixed = device.type == "cuda"                                    # bf16 compute, fp32 master weights


def load_policy(path, train=True):
    m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
    m.requires_grad_(train)
    if ddp:
        shard_model(m, mixed_precision=mixed)
    return m


model = load_policy(resume_dir or start_dir)
encoder = Encoder(args.encoder, device=str(device))

# ----------------------------------------------------------------------------- calibration table
calib_path = args.calib_file or os.path.join(args.out_dir, "calibration.json")
if master and args.calibration != "none" and not args.calib_file and not (resume and os.path.exists(calib_path)):
    table = build_table(parallel, encoder, seed=args.seed)      # a resumed run keeps its own table
    table.save(calib_path + ".tmp")
    os.replace(calib_path + ".tmp", calib_path)
if ddp:
    dist.barrier()                                               # every rank, whatever it found
table = CalibrationTable.load(calib_path) if args.calibration != "none" else None


# ----------------------------------------------------------------------------- prompts and rollouts
def messages(question: str, lang: str) -> list[dict]:
    """The chat asking for an answer in `lang` (SPEC §1.2): a plain-text tag, or a system prompt."""
    if args.lang_prompt == "tag":
        return [{"role": "user", "content": f"{question}\n<|out_lang_{lang}|>"}]
    return [{"role": "system", "content": f"You are a helpful assistant. Answer in {LANGUAGE_NAMES[lang]}."},
            {"role": "user", "content": question}]


def build_prompt(question: str, lang: str) -> str:
    return tok.apply_chat_template(messages(question, lang), tokenize=False, add_generation_prompt=True)


def answer_text(question: str, lang: str, answer: str, prompt: str) -> str:
    """What the model should write after `prompt`: the answer and the template's end of turn
    (<|im_end|>, <end_of_turn>, <|eot_id|>), so a warm start teaches the stop the rollouts use."""
    full = tok.apply_chat_template(messages(question, lang) + [{"role": "assistant", "content": answer}],
                                   tokenize=False)
    return full[len(prompt):].rstrip() if full.startswith(prompt) else answer + tok.eos_token


def prompt_tokens(item) -> int:
    """Prompt length in tokens: the longest over the languages it may be routed to."""
    prompts = [build_prompt(item["question"], l) for l in LANGUAGES]
    return max(map(len, tok(prompts, add_special_tokens=False)["input_ids"]))


# ----------------------------------------------------------------------------- warm-start SFT
def sft(steps: int) -> None:
    """Supervised warm start on (question + language tag -> answer in that language) (paper §5.4):
    cross-lingual pairs of the parallel set (text in language a, tag b -> the text in b) and the
    training items with their own language. Writes the result to out_dir/sft (the KL reference)."""
    by_id, _ = group_parallel(parallel)
    examples = [(it["question"], it["gate_lang"] or it["lang"], it["reference"]) for it in items]
    examples += [(texts[a], b, texts[b]) for texts in by_id.values() for a in texts for b in texts if a != b]
    lengths = map(len, tok([build_prompt(q, lang) for q, lang, _ in examples], add_special_tokens=False)["input_ids"])
    fits = [n <= args.max_prompt_len for n in lengths]
    print0(f"sft: {fits.count(True)} examples; skipped {fits.count(False)} with prompts over {args.max_prompt_len} tokens")
    examples = [e for e, ok in zip(examples, fits) if ok]
    opt = torch.optim.AdamW(model.parameters(), lr=args.sft_lr, weight_decay=args.weight_decay)
    gen = torch.Generator().manual_seed(args.seed)
    bar = tqdm(range(steps), desc="sft", disable=not master)
    for s in bar:
        pick = torch.randint(len(examples), (args.sft_batch,), generator=gen)[rank::world]
        seqs, masks = [], []
        for i in pick.tolist():
            q, lang, answer = examples[i]
            text = build_prompt(q, lang)
            prompt = tok(text, add_special_tokens=False)["input_ids"]
            answer = tok(answer_text(q, lang, answer, text), add_special_tokens=False)["input_ids"][:args.max_new_tokens]
            seqs.append(prompt + answer)
            masks.append([0] * len(prompt) + [1] * len(answer))
        T = max(map(len, seqs))
        ids = torch.tensor([[tok.pad_token_id] * (T - len(x)) + x for x in seqs], device=device)
        lmask = torch.tensor([[0] * (T - len(x)) + x for x in masks], device=device)
        am = (torch.arange(T, device=device)[None] >= T - torch.tensor(list(map(len, seqs)), device=device)[:, None]).long()
        n_resp = int(lmask.sum(1).max())
        logits = response_logits(model, ids, am, n_resp)                       # (b, n_resp, V)
        logp = token_logprobs(logits, ids[:, -n_resp:])                        # (b, n_resp)
        n_tok = all_reduce_sum(lmask.sum().float().cpu())
        loss = -(logp * lmask[:, -n_resp:]).sum() / n_tok
        (loss * world).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        bar.set_postfix(nll=f"{float(all_reduce_sum(loss.detach().cpu())):.3f}")
    sd = full_state_dict(model)
    if master:
        save_dir(sft_dir, sd)
    if ddp:
        dist.barrier()


# ----------------------------------------------------------------------------- checkpoints
from torch.distributed.checkpoint.state_dict import (StateDictOptions,  # noqa: E402
                                                     get_optimizer_state_dict, set_optimizer_state_dict)


def save_dir(path: str, sd: dict, trainer_state: dict | None = None) -> None:
    """Rank 0: a Hugging Face model directory (config, safetensors, tokenizer), plus
    trainer_state.pt when given, written under a temporary name and then renamed: a crash never
    leaves half a directory."""
    tmp = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path))
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, state_dict=sd)
    tok.save_pretrained(tmp)
    if trainer_state is not None:
        torch.save(trainer_state, os.path.join(tmp, "trainer_state.pt"))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


def save_checkpoint(step: int) -> None:
    """ckpt-STEP/: the model plus the trainer state (optimizer, router, every rank's RNG, step).
    Collective: every rank gathers, rank 0 writes."""
    sd = full_state_dict(model)
    osd = get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    rng = [{"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None}] * world
    if ddp:
        dist.all_gather_object(rng, rng[0])
    if master:
        save_dir(os.path.join(args.out_dir, f"ckpt-{step}"), sd, {
            "step": step, "optimizer": osd, "router": router.state_dict(), "rng": rng, "world": world,
            "args": vars(args)})
    if ddp:
        dist.barrier()


def truncate_log(path: str, step: int) -> None:
    """On resume, drop log lines written after the checkpoint (they will be written again)."""
    if master and os.path.exists(path):
        keep = [l for l in open(path, encoding="utf-8") if l.strip() and json.loads(l)["step"] <= step]
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(keep)


# ----------------------------------------------------------------------------- set-up
fits = [prompt_tokens(it) <= args.max_prompt_len for it in items]
n_long, items = fits.count(False), [it for it, ok in zip(items, fits) if ok]
# Translation items are never routed (all K rollouts are l_x for the router), but their answer is in
# the reference's own language: that language is asked for, gated (SPEC §1.3) and calibrated.
undetected = 0
for it in items:
    it["gate_lang"] = detect_language(it["reference"]) if it["topic"] == "Translation" else None
    if it["topic"] == "Translation" and it["gate_lang"] is None:
        undetected, it["gate_lang"] = undetected + 1, it["lang"]      # counted, printed below
print0(f"{len(items)} training items from {args.train_file}; skipped {n_long} with prompts over "
       f"{args.max_prompt_len} tokens; {undetected} Translation references of undetectable language "
       f"(their own language used); world {world} on {device}; loss path {kernel}")
if args.sft_steps and args.sft_batch % world:
    fail(f"--sft_batch {args.sft_batch} is not divisible by the world size {world}")
if len(items) < args.prompts_per_step:
    fail(f"only {len(items)} items fit --max_prompt_len {args.max_prompt_len}")
if args.sft_steps and not resume_dir and start_dir != sft_dir:
    sft(args.sft_steps)
    start_dir = sft_dir
opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
ref_model = load_policy(start_dir, train=False) if args.beta > 0 else None
steps_per_epoch = len(items) // args.prompts_per_step
total_steps = args.max_steps or args.epochs * steps_per_epoch
metrics_path, router_path = (os.path.join(args.out_dir, f) for f in ("metrics.jsonl", "router.jsonl"))
step = 0
if resume_dir:
    # mmap: the ranks share one page-cached copy of the (large) optimizer state.
    state = torch.load(os.path.join(resume_dir, "trainer_state.pt"), weights_only=False, mmap=True)
    if state["world"] != world:
        fail(f"{resume_dir} was written by {state['world']} ranks; exact resume needs the same world size")
    set_optimizer_state_dict(model, opt, optim_state_dict=state["optimizer"],
                             options=StateDictOptions(full_state_dict=True))
    router.load_state_dict(state["router"])
    torch.set_rng_state(state["rng"][rank]["cpu"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["rng"][rank]["cuda"])
    step = state["step"]
    truncate_log(metrics_path, step)
    truncate_log(router_path, step)
    print0(f"resumed from {resume_dir} at step {step}")
elif master:
    for path in (metrics_path, router_path):
        open(path, "w").close()
    with open(router_path, "a", encoding="utf-8") as f:
        f.write(json.dumps(router.snapshot()) + "\n")


def step_items(step: int) -> list[dict]:
    """This rank's prompts for a step: a fresh permutation each epoch, the same on every rank."""
    epoch, k = divmod(step, steps_per_epoch)
    perm = torch.randperm(len(items), generator=torch.Generator().manual_seed(args.seed + epoch))
    idx = perm[k * args.prompts_per_step:(k + 1) * args.prompts_per_step][rank * P_local:(rank + 1) * P_local]
    return [items[i] for i in idx.tolist()]


# ----------------------------------------------------------------------------- training
K = args.K
bar = tqdm(range(step, total_steps), initial=step, total=total_steps, desc="lrpo", disable=not master)
for step in bar:
    # --- route: K languages per prompt (router.py)
    t0 = time.time()
    batch = step_items(step)
    langs = [router.route(it["topic"], it["region"], it["lang"], K) for it in batch]
    prompts = [build_prompt(it["question"], it["gate_lang"] or l) for it, ls in zip(batch, langs) for l in ls]

    # --- generate: the policy, unsharded, left-padded, temperature 1.0
    ids, am, P = generate_rollouts(model, tok, prompts, args.max_new_tokens, args.temperature,
                                   args.top_p, args.gen_batch_size)  # (N, P+R), N = P_local * K
    R = ids.shape[1] - P
    resp, rmask = ids[:, P:], am[:, P:]                           # (N, R)
    t_generate = time.time() - t0

    # --- reward: calibrated similarity x language gate (reward.py, calibrate.py)
    t0 = time.time()
    texts = tok.batch_decode(resp, skip_special_tokens=True)
    targets = [it["gate_lang"] or l for it, ls in zip(batch, langs) for l in ls]
    out = compute_rewards(texts, [it["reference"] for it in batch for _ in range(K)],
                          [it["gate_lang"] or it["lang"] for it in batch for _ in range(K)], targets, encoder, table,
                          args.calibration, lam=args.cal_lambda, k=args.cal_shrink)
    rewards = out["reward"].to(device)                            # (N,)
    t_reward = time.time() - t0

    # --- train: one optimizer step; token-mean over the global batch (grpo.py)
    t0 = time.time()
    num_tokens = float(all_reduce_sum(rmask.sum().float().cpu()))
    agg = dict(clip_low=args.clip_low, clip_high=args.clip_high, beta=args.beta, agg=args.loss_agg,
               num_tokens=num_tokens, num_seqs=args.prompts_per_step * K, max_len=args.max_new_tokens,
               temperature=args.temperature, scale=args.scale_rewards, kernel=kernel)
    acc = dict.fromkeys(("loss", "kl", "clip_frac", "ratio", "tokens"), 0.0)
    n_micro = P_local // args.micro_prompts
    for i in range(n_micro):
        rows = slice(i * args.micro_prompts * K, (i + 1) * args.micro_prompts * K)
        if ddp:
            model.set_requires_gradient_sync(i == n_micro - 1)    # reduce-scatter once per step
        ref_logp = None
        if ref_model is not None:
            with torch.no_grad():
                ref_logp = token_logprobs(response_logits(ref_model, ids[rows], am[rows], R), resp[rows], args.temperature)
        logits = response_logits(model, ids[rows], am[rows], R)   # (b, R, V)
        loss, st = policy_loss(logits, resp[rows], rewards[rows], rmask[rows], K, None, ref_logp, **agg)
        (loss * world).backward()                                 # FSDP averages over ranks
        acc["loss"] += loss.item()
        for k in ("kl", "clip_frac", "ratio"):                    # token-weighted across micro-batches
            acc[k] += st[k] * st["tokens"]
        acc["tokens"] += st["tokens"]
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip or float("inf"))
    grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
    opt.step()
    opt.zero_grad(set_to_none=True)
    t_train = time.time() - t0

    # --- router: buffer every group's rewards; EMA update every M steps (all ranks agree)
    for j, it in enumerate(batch):
        router.record(it["topic"], it["region"], langs[j], out["reward"][j * K:(j + 1) * K])
    updated = router.step()

    # --- log: sums over ranks, one line per step from rank 0
    local = {**{k: float(out[k].sum()) for k in ("reward", "r_qual", "r_lang", "sim")}, **acc,
             "n": len(texts), "response_tokens": float(rmask.sum()),
             "missing_pairs": out["missing_pairs"], "no_language": out["no_language"]}
    tot = dict(zip(local, all_reduce_sum(torch.tensor(list(local.values()), dtype=torch.float64)).tolist()))
    row = {"step": step + 1, **{k: tot[k] / tot["n"] for k in ("reward", "r_qual", "r_lang", "sim")},
           "loss": tot["loss"], **{k: tot[k] / max(tot["tokens"], 1) for k in ("kl", "clip_frac", "ratio")},
           "grad_norm": float(grad_norm), "response_len": tot["response_tokens"] / tot["n"],
           "tokens_per_s": tot["response_tokens"] / t_generate, "t_generate": t_generate,
           "t_reward": t_reward, "t_train": t_train, "tau": router.tau, "eps": router.eps,
           "missing_pairs": int(tot["missing_pairs"]), "no_language": int(tot["no_language"]),
           "router_updated": updated}
    if master:
        with open(metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if updated:
            with open(router_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(router.snapshot()) + "\n")
        tqdm.write(f"step {step + 1:4d} | reward {row['reward']:.3f} | r_lang {row['r_lang']:.3f} | "
                   f"sim {row['sim']:.3f} | loss {row['loss']:+.4f} | kl {row['kl']:.4f} | "
                   f"len {row['response_len']:.0f} | gen {t_generate:.1f}s rew {t_reward:.1f}s train {t_train:.1f}s")

    # --- save: every --save_every steps and at the end
    if (step + 1) % args.save_every == 0 or step + 1 == total_steps:
        save_checkpoint(step + 1)

# Every rank must hold the identical router (its update all-reduces the buckets): check it.
digest = hashlib.sha256(torch.cat([router.A.flatten(), router.B.flatten()]).numpy().tobytes()).hexdigest()
digests = [digest] * world
if ddp:
    dist.all_gather_object(digests, digest)
assert len(set(digests)) == 1, f"ranks disagree on the router: {digests}"
print0(router.table())
print0(f"router identical on all {world} ranks")
if ddp:
    dist.barrier()
    dist.destroy_process_group()
