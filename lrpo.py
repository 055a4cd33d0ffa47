"""
LRPO training: GRPO whose rollouts are generated in languages chosen by a learned router.

    torchrun --standalone --nproc_per_node=2 lrpo.py --tiny        # CPU demo under 2-rank FSDP2, ~3 min
    python lrpo.py --tiny                                          # the same in one process
    torchrun --standalone --nproc_per_node=8 lrpo.py --train_file data/train.jsonl \\
        --sft_file data/sft.jsonl --sft_steps 100                  # LRPO as in the paper (README: recipes)
    torchrun ... lrpo.py ... --resume auto                         # continue from the newest ckpt-*
    torchrun --nproc_per_node=4 ... --resume auto --resume_force   # ... on another number of GPUs

How LRPO departs from GRPO (paper §3, Algorithms 1 and 2):
1. Route (Algorithm 1, Eq. 1): of the K rollouts per prompt, K_on stay in the prompt's language;
   each other one is drawn from softmax((A[t] + 1[regional] B[g]) / tau), or uniformly with prob. eps.
2. Generate: the language is asked for by the tag `\\n<|out_lang_xx|>` (after the warm start of §5.4)
   or by a system prompt written in it (LRPO-Zero). The GRPO group thus mixes languages.
3. Reward (Eqs. 2-5): mmBERT similarity to the reference, calibrated for the (reference, rollout)
   language pair, times a language-ID gate: r = r_qual * r_lang, in [0, 1].
4. Router (Eqs. 6, 7): every M steps each (topic, region, language) bucket's z-scored mean reward
   moves A (and B for regional items) by EMA; tau and eps anneal every step; ranks sum the buckets.

Decisions (the release's behaviour beside ours where they differ):
1. Optimizer steps per rollout batch (update.py): --mini_batches M x --ppo_epochs E. M = E = 1 is the
   paper's reading (App. C.1): old_logp = logp.detach(), the clip never acts; the authors' script runs
   8 mini-batches of 256 with --clip_c 3 --verl_clamps (README, recipes). The router updates once per
   rollout step either way. The reference model (the frozen start policy) runs only if beta > 0.
2. Micro-batches hold whole groups (--micro_prompts x K), so the fused kernel forms the advantages
   itself. The loss is normalised by the response tokens of the optimizer step's mini-batch over all
   ranks, times the world size to undo FSDP's averaging (grpo.py, Decision 4): it depends on neither
   world size nor micro-batch split. The release normalises by each micro-batch's own tokens.
3. Translation items are never routed, and their right answer is in the language they translate
   into: that language (the reference's, detected) is asked for, gated and calibrated. The release
   asks for and gates on the question's language, which scores a correct translation 0.
4. Under torchrun the policy is FSDP2-sharded; --dtype bf16 (the default on CUDA) computes in bf16
   with fp32 master weights and gradient reduction; one process gets the same through autocast.
5. Checkpoints (checkpoint.py) hold what an exact resume needs; the data order is a function of (seed,
   step), so --resume_force continues on another world size (re-seeding only per-rank draws). One run
   per --out_dir (runlock.py); on SIGTERM or SIGUSR1: finish the step, checkpoint, exit 75 (preempt.py);
   a non-finite step or checkpoint stops the run with one line. Inputs are checked before any model
   loads; prompts over --max_prompt_len are skipped and counted, never truncated.
6. --tiny presets the flags not given on the command line: the CPU recipe measured for the demo.
7. Each metrics.jsonl row says what the step's rollouts did (diagnostics.py; one all-reduce a step);
   --log_rollouts groups go to rollouts.jsonl at step 1 and each checkpoint; --val_file is answered
   greedily every --val_every steps; --mask_truncated (off, as in the paper) drops cut rollouts' loss.
"""
import argparse
import contextlib
import hashlib
import importlib.util
import os
import resource
import sys
import time
from datetime import timedelta
from functools import partial

import torch
import torch.distributed as dist
from tqdm import tqdm

from calibrate import CalibrationTable, build_table, given_table, group_parallel, load_parallel
from checkpoint import (CheckpointError, check_warm_start, load_policy, load_tokenizer, open_run, restore,
                        save_checkpoint, save_policy)
from data.outputs import check_writable
from data.prompts import REQUESTS, build_prompt, prepare_items
from data.records import check_disjoint, check_encoder, check_policy, load_sft, load_train, ranged
from data.tiny import tiny_models
from diagnostics import response_cut, rollout_sums, sample_rows, step_row, validate
from grpo import LOSS_AGGS, all_gather, all_reduce_sum, barrier, init_distributed, policy_loss, unsharded
from preempt import StopSignals
from reward import LANGUAGES, Encoder, compute_rewards
from router import MODES, REGIONS, TOPICS, UPDATES, LanguageRouter, load_priors
from runlock import RunLocked, hold_run_dir
from runlog import RunLog
from sampler import SAMPLERS, generate_rollouts, stop_token_ids
from sft import sft_examples, warm_start
from update import NonFiniteError, policy_update


# ----------------------------------------------------------------------------- arguments
INT1, INT0, POS = ranged(int, lo=1), ranged(int, lo=0), ranged(float, above=0)
p = argparse.ArgumentParser(description="LRPO training (see the module docstring for commands)")
g = p.add_argument_group("model")
g.add_argument("--model", default="Qwen/Qwen2.5-1.5B-Instruct", help="policy: hub name or local HF directory")
g.add_argument("--encoder", default="jhu-clsp/mmBERT-small", help="reward encoder (mmBERT): hub name or local directory")
g.add_argument("--dtype", choices=["fp32", "bf16"], help="policy compute dtype (default: bf16 on CUDA, fp32 on CPU)")
g.add_argument("--encoder_dtype", choices=["fp32", "bf16"], default="fp32", help="reward encoder dtype (the release: fp32)")
g.add_argument("--tiny", action="store_true", help="CPU demo: tiny tokenizer, Qwen2 policy and ModernBERT encoder built from configs, data/sample")
g = p.add_argument_group("data")
g.add_argument("--train_file", default="data/train.jsonl", help="training records (JSON Lines, data/README.md)")
g.add_argument("--sft_file", default="", help="warm-start records {id, question, lang, answer} (paper §5.4)")
g.add_argument("--parallel_file", default="data/sample/parallel.jsonl", help="parallel records: the calibration table when none is given; --sft_parallel pairs")
g.add_argument("--calib_file", default="", help="calibrate.py's table; default: the release's for mmBERT-small, else built from --parallel_file")
g.add_argument("--val_file", default="", help="held-out records (data/prepare.py's val.jsonl): greedy validation every --val_every steps")
g.add_argument("--val_every", type=INT1, default=5, help="validate every N steps and at the end (the release: 5)")
g = p.add_argument_group("rollout")
g.add_argument("--K", type=ranged(int, lo=2), default=8, help="rollouts per prompt, the GRPO group (>= 2: a group of one has no preference)")
g.add_argument("--prompts_per_step", type=INT1, default=256, help="prompts per training step, over all ranks (>= 1)")
g.add_argument("--max_prompt_len", type=INT1, default=512, help="prompt tokens; longer prompts are skipped and counted (>= 1)")
g.add_argument("--max_new_tokens", type=INT1, default=1024, help="response tokens (>= 1)")
g.add_argument("--temperature", type=POS, default=1.0, help="sampling temperature, also of the log-probs (> 0)")
g.add_argument("--top_p", type=ranged(float, above=0, hi=1), default=1.0, help="nucleus sampling (> 0 and <= 1)")
g.add_argument("--gen_batch_size", type=INT1, default=64, help="sequences per generation batch on a rank (>= 1)")
g.add_argument("--lang_prompt", choices=REQUESTS, default="tag", help="how the language is asked for (data/prompts.py); none: GRPO only")
g.add_argument("--sampler", choices=SAMPLERS, default="ours", help="ours: static KV cache (sampler.py); hf: transformers generate()")
g.add_argument("--mask_truncated", action="store_true", help="leave rollouts cut at --max_new_tokens out of the loss (DAPO's overlong filter)")
g = p.add_argument_group("router")
g.add_argument("--router_mode", choices=MODES, default="learned", help="learned = LRPO; monolingual = GRPO; input / english / uniform = fixed routing")
g.add_argument("--router_update", choices=UPDATES, default="per_region", help="Eq. 7 per (topic, region) bucket, or pooled over regions (ablation)")
g.add_argument("--K_on", type=INT0, default=2, help="rollouts kept in the prompt's own language (>= 0)")
g.add_argument("--tau", type=POS, nargs=3, default=[1.0, 0.3, 0.999], metavar=("TAU0", "MIN", "DECAY"), help="router temperature schedule (MIN <= TAU0, DECAY <= 1)")
g.add_argument("--eps", type=ranged(float, lo=0, hi=1), nargs=3, default=[0.2, 0.0, 0.995], metavar=("EPS0", "MIN", "DECAY"), help="uniform-exploration schedule (in [0, 1], MIN <= EPS0, DECAY > 0)")
g.add_argument("--no_anneal", action="store_true", help="keep tau0 and eps0 (ablation)")
g.add_argument("--alpha", type=ranged(float, above=0, hi=1), default=0.1, help="router EMA rate (> 0 and <= 1)")
g.add_argument("--update_every", type=INT1, default=5, help="router update every M steps (>= 1)")
g.add_argument("--bucket_norm", choices=["zscore", "none"], default="zscore", help="normalise bucket means across languages")
g.add_argument("--priors", default="", help="JSON file {topic or region: {lang: weight}}: hand priors instead of the uniform init (ablation)")
g = p.add_argument_group("reward")
g.add_argument("--calibration", choices=["mean", "quantile", "none"], default="mean", help="cross-lingual calibration (none = the collapse ablation)")
g.add_argument("--cal_lambda", type=ranged(float, lo=0), default=1.0, help="mean calibration strength lambda (>= 0)")
g.add_argument("--cal_shrink", type=POS, default=None, help="shrinkage k: lambda = n / (n + k) (> 0)")
g.add_argument("--cal_ub", action="store_true", help="quantile calibration: first s <- min(1, s / ub_pair), as the release")
g.add_argument("--scale_rewards", choices=["group", "none"], default="group", help="group: (r - mean) / std; none: Dr.GRPO's r - mean")
g = p.add_argument_group("optimisation")
g.add_argument("--lr", type=POS, default=1e-6, help="AdamW learning rate, constant (> 0)")
g.add_argument("--weight_decay", type=ranged(float, lo=0), default=0.01, help="AdamW weight decay (>= 0)")
g.add_argument("--grad_clip", type=ranged(float, lo=0), default=1.0, help="gradient-norm clip (0 = off)")
g.add_argument("--clip_low", type=ranged(float, lo=0, hi=1), default=0.2, help="ratio clip below 1 (in [0, 1])")
g.add_argument("--clip_high", type=ranged(float, lo=0), default=0.2, help="ratio clip above 1 (>= 0)")
g.add_argument("--beta", type=ranged(float, lo=0), default=0.001, help="k3 KL coefficient (0 = off: no reference model)")
g.add_argument("--loss_agg", choices=LOSS_AGGS, default="token-mean", help="loss aggregation")
g.add_argument("--mini_batches", type=INT1, default=1, help="optimizer steps per rollout batch, each on 1/M of its groups (the release: 8)")
g.add_argument("--ppo_epochs", type=INT1, default=1, help="passes of --mini_batches optimizer steps over each rollout batch (>= 1)")
g.add_argument("--clip_c", type=ranged(float, above=1), help="dual-clip: the token loss of A < 0 is at most -A * C (> 1; the release: 3)")
g.add_argument("--verl_clamps", action="store_true", help="verl's clamps: log-ratios to +-20 before exp, k3 KL to +-10 (the release)")
g.add_argument("--micro_prompts", type=INT1, default=1, help="prompts (x K rollouts) per forward/backward on a rank (>= 1)")
g.add_argument("--grad_ckpt", action="store_true", help="recompute decoder activations in backward (Gemma-3-4B needs it: python bench.py memory)")
g.add_argument("--epochs", type=INT1, default=4, help="passes over the training set (>= 1)")
g.add_argument("--max_steps", type=INT0, default=0, help="stop after this many steps (0 = epochs decide)")
g.add_argument("--kernel", choices=["auto", "triton", "torch"], default="auto", help="loss path: fused Triton kernel or PyTorch (auto: triton on CUDA)")
g = p.add_argument_group("warm start (sft.py)")
g.add_argument("--sft_steps", type=INT0, default=0, help="warm-start SFT steps before RL (0 = none; paper §5.4)")
g.add_argument("--sft_lr", type=POS, default=1e-5, help="warm-start learning rate (> 0)")
g.add_argument("--sft_batch", type=INT1, default=16, help="warm-start sequences per step, over all ranks (>= 1)")
g.add_argument("--sft_parallel", action="store_true", help="add the parallel set's cross-lingual pairs to the warm start (the tiny demo)")
g = p.add_argument_group("runtime")
g.add_argument("--out_dir", default="out", help="metrics.jsonl, router.jsonl and ckpt-STEP/ go here")
g.add_argument("--save_every", type=INT0, default=20, help="checkpoint every N steps and at the end (0 = only at the end)")
g.add_argument("--log_rollouts", type=INT0, default=4, help="groups written to rollouts.jsonl at step 1 and every checkpoint (0 = none)")
g.add_argument("--resume", choices=["auto"], help="'auto': continue from the newest readable checkpoint in --out_dir")
g.add_argument("--resume_force", action="store_true", help="resume even if run-defining settings differ from the checkpoint's")
g.add_argument("--seed", type=ranged(int, lo=0, hi=2**63 - 1), default=42, help="seed (offset by rank for sampling; >= 0)")
g.add_argument("--collective_timeout", type=POS, default=10.0, help="minutes before a collective of the training loop fails (a stuck rank)")
g.add_argument("--wandb", default="", metavar="PROJECT", help="also log metrics to Weights & Biases (pip install wandb)")
TINY = dict(train_file="data/sample/train.jsonl", sft_file="data/sample/sft.jsonl", sft_parallel=True, val_file="data/sample/val.jsonl", val_every=20,
            prompts_per_step=8, max_new_tokens=24, max_prompt_len=224, lr=3e-4, sft_steps=1000,
            sft_lr=3e-3, max_steps=120, save_every=40, micro_prompts=4, gen_batch_size=64)
args = p.parse_args()
if args.tiny:                       # the measured CPU recipe; flags given on the command line win
    p.set_defaults(**TINY)
    args = p.parse_args()
# ----------------------------------------------------------------------------- distributed
rank, world, device = init_distributed(args.collective_timeout)
ddp, master = dist.is_initialized(), rank == 0
slow = dist.new_group(backend="gloo", timeout=timedelta(minutes=60)) if ddp else None  # rank 0 writing alone
torch.manual_seed(args.seed + rank)
print0 = tqdm.write if master else lambda *a, **k: None
fail = lambda msg: sys.exit(f"lrpo.py: {msg}")  # noqa: E731  (a one-line error, exit status 1)

# ----------------------------------------------------------------------------- checks, inputs
P_rank = args.prompts_per_step // world                        # prompts per rank per step
M, K = args.mini_batches, args.K                              # optimizer steps per rollout step; group size
on_cli = vars(p.parse_args(namespace=argparse.Namespace(model=None, encoder=None)))   # None: not on the command line
given = [f"--{k}" for k in ("model", "encoder") if on_cli[k] is not None]
for bad, msg in [                   # settings that contradict each other or the world size: usage errors
    (args.router_mode == "learned" and args.K <= args.K_on, f"--K {args.K} must exceed --K_on {args.K_on}: the router needs free rollouts"),
    (not (args.tau[1] <= args.tau[0] and args.tau[2] <= 1), f"--tau {args.tau}: needs MIN <= TAU0 and DECAY <= 1"),
    (not (args.eps[1] <= args.eps[0] and args.eps[2] > 0), f"--eps {args.eps}: needs MIN <= EPS0 and DECAY > 0"),
    (args.sft_steps and not (args.sft_file or args.sft_parallel), "--sft_steps needs --sft_file (or --sft_parallel)"),
    (args.lang_prompt == "none" and args.router_mode != "monolingual", "--lang_prompt none asks for no language: use it with --router_mode monolingual"),
    (args.prompts_per_step % world, f"--prompts_per_step {args.prompts_per_step} is not divisible by the world size {world}"),
    (P_rank % M, f"{P_rank} prompts per rank do not split into --mini_batches {M} of whole groups"),
    (P_rank // M % args.micro_prompts, f"{P_rank // M} prompts per rank and mini-batch do not split into micro-batches of --micro_prompts {args.micro_prompts}"),
    (args.sft_steps and args.sft_batch % world, f"--sft_batch {args.sft_batch} is not divisible by the world size {world}"),
    (args.tiny and given, f"--tiny builds its own policy and encoder: drop {' and '.join(given)}"),
]:
    if bad:
        p.error(msg)
if args.wandb and importlib.util.find_spec("wandb") is None:     # optional, only with --wandb
    fail("--wandb needs the wandb package: pip install wandb")
if args.lang_prompt == "tag" and not args.sft_steps and not args.resume:
    print0("warning: --lang_prompt tag without a warm start (--sft_steps): an instruct model has never seen <|out_lang_xx|>")
try:                                                             # every line, before any model loads
    check_writable(args.out_dir, directory=True)                 # data/outputs.py: now, not at the first save
    if not args.tiny:
        check_policy(args.model)
        check_encoder(args.encoder)
    items = load_train(args.train_file, LANGUAGES, TOPICS)
    sft_records = load_sft(args.sft_file, LANGUAGES) if args.sft_steps and args.sft_file else []
    val_items = load_train(args.val_file, LANGUAGES, TOPICS) if args.val_file else []
    check_disjoint(args.train_file, items, {args.sft_file: sft_records, args.val_file: val_items})
    calib = given_table(args.calib_file, None if args.tiny else args.encoder, args.calibration, args.cal_ub)  # or built below
    need_parallel = args.tiny or (args.sft_steps and args.sft_parallel) or (args.calibration != "none" and not calib)
    par_records = load_parallel(args.parallel_file, LANGUAGES) if need_parallel else []
    parallel = group_parallel(par_records)[0]                    # {id: {lang: text}}
except (ValueError, OSError) as e:                              # json.JSONDecodeError is a ValueError
    fail(str(e))
try:
    router = LanguageRouter(LANGUAGES, TOPICS, REGIONS, mode=args.router_mode, update=args.router_update,
                            K_on=args.K_on, tau=tuple(args.tau), eps=tuple(args.eps), anneal=not args.no_anneal,
                            alpha=args.alpha, update_every=args.update_every, bucket_norm=args.bucket_norm,
                            priors=load_priors(args.priors) if args.priors else None, seed=args.seed)
except (ValueError, OSError) as e:
    fail(f"{args.priors or 'router settings'}: {e}")
if len(items) < args.prompts_per_step:
    fail(f"{args.train_file} has {len(items)} items, fewer than --prompts_per_step {args.prompts_per_step}")
try:                                                             # one run per directory (runlock.py), then resume
    hold_run_dir(args.out_dir, print0)
    resume_dir, state = open_run(args.out_dir, bool(args.resume), vars(args), args.resume_force, print0)
    if state and state["step"] >= (last := args.max_steps or args.epochs * (len(items) // args.prompts_per_step)):
        print0(f"lrpo.py: {resume_dir} is at step {state['step']}, the run ends at step {last}: nothing to train")
        raise SystemExit(0)                                      # exit 0: a requeued finished job is no failure
    check_warm_start(args.out_dir, state, needed=args.beta > 0)
except (CheckpointError, RunLocked) as e:
    fail(str(e))
stop = StopSignals()                                             # SIGTERM, SIGUSR1: save after this step (preempt.py)

# ----------------------------------------------------------------------------- models
policy_path, encoder_path = args.model, args.encoder
if args.tiny:                                                    # OUT/tiny, built once by rank 0 (data/tiny.py)
    policy_path, encoder_path = tiny_models(os.path.join(args.out_dir, "tiny"), items, sft_records, par_records, args.seed, master)
    barrier(slow)
sft_dir = os.path.join(args.out_dir, "sft")                      # the warm-started policy = the KL reference
start_dir = sft_dir if os.path.exists(os.path.join(sft_dir, "config.json")) else policy_path
tok = load_tokenizer(policy_path)                                # transformers is first imported here, after the checks
bf16 = (args.dtype or ("bf16" if device.type == "cuda" else "fp32")) == "bf16"
amp = partial(torch.autocast, device.type, dtype=torch.bfloat16) if bf16 and not ddp else contextlib.nullcontext
load = partial(load_policy, device=device, shard=ddp, mixed_precision=bf16, grad_ckpt=args.grad_ckpt)
model = load(resume_dir or start_dir)
encoder = Encoder(encoder_path, device=str(device), dtype=torch.bfloat16 if args.encoder_dtype == "bf16" else torch.float32)
kernel = args.kernel if args.kernel != "auto" else ("triton" if device.type == "cuda" else "torch")
calib_path = os.path.join(args.out_dir, "calibration.json")
if args.calibration != "none" and not calib:                    # build one; a resumed run keeps its own
    if master and not (resume_dir and os.path.exists(calib_path)):
        build_table(par_records, encoder, seed=args.seed).save(calib_path)
    barrier(slow)
    calib = CalibrationTable.load(calib_path)

# ----------------------------------------------------------------------------- prompts, warm start
items, n_long, undetected = prepare_items(tok, items, args.lang_prompt, args.max_prompt_len, LANGUAGES)  # Decision 3
val_items, val_long, _ = prepare_items(tok, val_items, args.lang_prompt, args.max_prompt_len, LANGUAGES)
print0(f"{len(items)} items ({n_long} over {args.max_prompt_len} tokens skipped, {undetected} Translation references of no router "
       f"language), {len(val_items)} to validate ({val_long} skipped); world {world} on {device}, {'bf16' if bf16 else 'fp32'}, loss {kernel}")
if len(items) < args.prompts_per_step:
    fail(f"only {len(items)} items fit --max_prompt_len {args.max_prompt_len}")
if args.sft_steps and not resume_dir and start_dir != sft_dir:     # the warm start, written as OUT/sft (sft.py)
    try:
        examples = sft_examples(tok, sft_records, args.lang_prompt, args.max_prompt_len, args.max_new_tokens,
                                parallel if args.sft_parallel else None, log=print0)
        warm_start(model, tok, examples, steps=args.sft_steps, lr=args.sft_lr, batch=args.sft_batch,
                   weight_decay=args.weight_decay, seed=args.seed, bf16_autocast=bf16 and not ddp, show=master)
        save_policy(sft_dir, model, tok, group=slow)
    except (ValueError, CheckpointError) as e:                   # no example fits; OUT/sft cannot be written
        fail(str(e))
    start_dir = sft_dir
opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
ref_model = load(start_dir, train=False) if args.beta > 0 else None
steps_per_epoch = len(items) // args.prompts_per_step
total_steps = args.max_steps or args.epochs * steps_per_epoch
step = restore(state, model, opt, rank) if state else 0
if state:
    router.load_state_dict(state["router"])
    print0(f"resumed from {resume_dir} at step {step}")
runlog = RunLog(args.out_dir, step, router.snapshot(), args.wandb, vars(args), print0) if master else None
loss_fn = partial(policy_loss, group_size=K, temperature=args.temperature, scale=args.scale_rewards,
                  clip_low=args.clip_low, clip_high=args.clip_high, clip_c=args.clip_c,
                  log_ratio_clamp=20.0 if args.verl_clamps else None, kl_clamp=10.0 if args.verl_clamps else None,
                  beta=args.beta, agg=args.loss_agg, max_len=args.max_new_tokens, kernel=kernel)
update = partial(policy_update, loss_fn=loss_fn, group_size=K, mini_batches=M, epochs=args.ppo_epochs,
                 micro_prompts=args.micro_prompts, ref_model=ref_model, temperature=args.temperature,
                 grad_clip=args.grad_clip, autocast=amp)
cal = dict(lam=args.cal_lambda, k=args.cal_shrink, ub=args.cal_ub)       # calibration (Eqs. 2, 3), as in training
val = partial(validate, tok=tok, items=val_items[rank::world], encoder=encoder, calib=calib, how=args.lang_prompt,
              max_new_tokens=args.max_new_tokens, batch_size=args.gen_batch_size, languages=LANGUAGES,
              sampler=args.sampler, calibration=args.calibration, **cal)
stop_ids = stop_token_ids(model, tok)

# ----------------------------------------------------------------------------- training
bar = tqdm(range(step, total_steps), initial=step, total=total_steps, desc="lrpo", disable=not master)
for step in bar:
    # --- route: this rank's prompts (a fresh permutation each epoch, the same on every rank), K languages each
    t0 = time.time()
    epoch, nth = divmod(step, steps_per_epoch)
    perm = torch.randperm(len(items), generator=torch.Generator().manual_seed(args.seed + epoch))
    batch = [items[i] for i in perm[nth * args.prompts_per_step:][rank * P_rank:(rank + 1) * P_rank].tolist()]
    langs = [router.route(it["topic"], it["region"], it["lang"], K) for it in batch]
    targets = [l if it["topic"] != "Translation" else it["gate_lang"] for it, ls in zip(batch, langs) for l in ls]
    prompts = [build_prompt(tok, batch[i // K]["question"], l, args.lang_prompt) for i, l in enumerate(targets)]

    # --- generate: the policy unsharded (FSDP2), left-padded prompts, plain sampling (sampler.py)
    with unsharded(model.eval()), amp():                     # eval: a checkpointed layer keeps no cache
        ids, am, P = generate_rollouts(model, tok, prompts, args.max_new_tokens, args.temperature, args.top_p,
                                       args.gen_batch_size, sampler=args.sampler)  # (N, P+R), N = P_rank * K
    resp, rmask = ids[:, P:], am[:, P:]                          # (N, R)
    cut = response_cut(resp, rmask, stop_ids)                    # (N,) ran to --max_new_tokens
    t_generate = time.time() - t0

    # --- reward: calibrated similarity x language gate (reward.py, calibrate.py)
    t0 = time.time()
    texts = tok.batch_decode(resp, skip_special_tokens=True)
    out = compute_rewards(texts, [it["reference"] for it in batch for _ in range(K)],
                          [it["gate_lang"] for it in batch for _ in range(K)], targets, encoder, calib, args.calibration, **cal)
    rewards = out["reward"].to(device)                           # (N,)
    t_reward = time.time() - t0

    # --- train: --ppo_epochs x --mini_batches optimizer steps; token-mean per step (update.py, grpo.py)
    t0 = time.time()
    loss_mask = rmask.masked_fill(cut[:, None], 0) if args.mask_truncated else rmask   # (N, R)
    try:
        upd = update(model, opt, ids, am, rewards, loss_mask)    # {stat: [value per optimizer step]}
    except NonFiniteError as e:
        fail(f"step {step + 1}: {e}; stopped before the optimizer step (the newest checkpoint is intact)")
    t_train = time.time() - t0

    # --- router: buffer every group's rewards; EMA update every M steps (all ranks agree)
    for j, it in enumerate(batch):
        router.record(it["topic"], it["region"], langs[j], out["reward"][j * K:(j + 1) * K])
    updated = router.step()

    # --- log: this rank's sums over ranks (diagnostics.py); validation, rollout samples; rank 0 writes
    sums = rollout_sums(out, targets, rmask.sum(1), cut, K, LANGUAGES, masked=int(cut.sum()) * args.mask_truncated)
    tot = dict(zip(sums, all_reduce_sum(torch.tensor(list(sums.values()), dtype=torch.float64)).tolist()))
    peak = torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # CPU: max resident set, kB -> GB
    row = {"step": step + 1, **step_row(tot, LANGUAGES),
           **{k: sum(upd[k]) / len(upd[k]) for k in ("loss", "kl", "clip_frac", "ratio", "grad_norm")},
           "tokens_per_s": tot["response_tokens"] / t_generate, "t_generate": t_generate, "t_reward": t_reward,
           "t_train": t_train, "peak_mem_gb": max(all_gather(peak)), "tau": router.tau, "eps": router.eps,
           "router_updated": updated, "updates": upd}
    save = (args.save_every and (step + 1) % args.save_every == 0) or step + 1 == total_steps
    if val_items and ((step + 1) % args.val_every == 0 or step + 1 == total_steps):
        with unsharded(model.eval()), amp():
            row["val"] = val(model)
    samples = []
    if args.log_rollouts and (step == 0 or save):               # the first groups of the global batch
        mine = range(min(P_rank, max(0, args.log_rollouts - rank * P_rank)))
        samples = all_gather(sample_rows(step + 1, batch, targets, args.lang_prompt, texts, out, rmask.sum(1), cut, K, mine))
    if master:
        runlog.write(row, router.snapshot() if updated else None, [r for part in samples for r in part])
        tqdm.write(f"step {step + 1:4d} | reward {row['reward']:.3f} | r_lang {row['r_lang']:.3f} | "
                   f"sim {row['sim']:.3f} | loss {row['loss']:+.4f} | kl {row['kl']:.4f} | "
                   f"len {row['response_len']:.0f} | gen {t_generate:.1f}s rew {t_reward:.1f}s train {t_train:.1f}s")

    # --- save: every --save_every steps, at the end, and when a rank got SIGTERM / SIGUSR1 (one small all-reduce)
    if stop.agreed() or save:
        try:
            save_checkpoint(args.out_dir, step + 1, model, tok, opt,
                            {"router": router.state_dict(), "args": vars(args)}, group=slow)
        except CheckpointError as e:
            fail(f"{e} (the previous checkpoint and the logs are intact)")
    if stop.stopped:
        break

# Every rank must hold the identical router (its update all-reduces the buckets): check it.
digests = all_gather(hashlib.sha256(torch.cat([router.A.flatten(), router.B.flatten()]).numpy().tobytes()).hexdigest())
assert len(set(digests)) == 1, f"ranks disagree on the router: {digests}"
print0(router.table())
print0(f"router identical on all {world} ranks")
barrier()
if ddp:
    dist.destroy_process_group()
if stop.stopped:                                                 # exit code 75: continue with --resume auto
    stop.exit(f"lrpo.py: {stop.name}: stopped after step {step + 1} and saved {args.out_dir}/ckpt-{step + 1}; "
              "continue with --resume auto", show=master)
