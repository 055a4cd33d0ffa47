"""
A run directory: policies in and out, checkpoints that resume exactly, logs that survive a crash.

    from checkpoint import load_policy, open_run, restore, save_checkpoint
    model = load_policy("Qwen/Qwen2.5-1.5B-Instruct", device, shard=ddp, mixed_precision=True)
    save_checkpoint(out_dir, step, model, tok, opt, {"router": ..., "args": ...})   # every rank
    ckpt, state = open_run(out_dir, resume=True, settings=vars(args))             # every rank

out_dir holds metrics.jsonl and router.jsonl (one JSON object per step / router update),
calibration.json, sft/ (the warm-started policy) and ckpt-STEP/: a Hugging Face model directory
(config, safetensors, tokenizer) plus trainer_state.pt; while a run lives, also its lock (runlock.py).

Decisions:
1. Rank 0 writes; every rank takes part in gathering the full model and optimizer state (FSDP2
   collectives). trainer_state.pt holds the step, the optimizer state and the caller's state
   (router, args), all whole (unsharded), and every rank's RNG. On the same world size a resume is
   exact. On another one (the job came back on 4 GPUs instead of 8) it is refused unless forced:
   weights, optimizer and router load whole and each step's prompts are the same slice of one
   global permutation, but the random draws are per rank (sampling; the router's, seeded by rank)
   and cannot be split anew: each rank's torch generators are re-seeded from the checkpoint and its
   rank. What follows is a faithful continuation, not the run the old world size would have made.
2. Atomic: a directory is written through data/outputs.write_dir (a temporary directory beside
   it, then renamed). A write that fails (disk full, read-only directory) removes its temporary
   directory, leaves the previous checkpoint and the logs as they were, and raises CheckpointError
   naming the directory and the cause, on every rank.
3. trainer_state.pt holds tensors and plain containers only and is read with weights_only=True:
   a checkpoint from someone else cannot run code on load; one that tries is refused.
4. Resume takes the newest ckpt-STEP/ with a trainer_state.pt; one that cannot be read (a truncated
   safetensors file or trainer_state.pt) is renamed ckpt-STEP.broken (never deleted) with a warning,
   and the previous one is tried.
5. Logs: a half-written last line (a crash mid-write) is dropped with a warning; on resume, lines
   after the checkpoint's step are dropped too (they are written again).
6. A fresh run never writes over another run's files (checkpoints, logs, warm start): it refuses.
7. A resume continues the same run: the world size (Decision 1) and the settings that define the
   run (RUN_SETTINGS: model, data, seed, group size, prompts per step, router, calibration, language
   request) must be the checkpoint's; others (learning rate, max_steps, ...) may change. `force`
   overrides both checks, with a warning naming what differs.
8. No checkpoint or model directory with a non-finite weight (or optimizer moment) is written:
   rank 0 checks the whole state before writing, every rank learns the refusal, and the previous
   checkpoint stays the newest.
9. A resumed run's warm start (sft/) must read back whole, and a run that warm-started needs it as
   its KL reference (beta > 0): missing or truncated, it is an error before any model loads, never
   a silent fall back to the untuned policy.
"""
import glob
import hashlib
import json
import os
import pickle
import shutil
import struct

import torch
import torch.distributed as dist

from data.records import read_jsonl
from grpo import all_gather, full_state_dict, shard_model

RUN_FILES = ("metrics.jsonl", "router.jsonl", "sft")          # what a fresh run must not overwrite
RUN_SETTINGS = ("model", "encoder", "tiny", "train_file", "seed", "K", "K_on", "prompts_per_step",  # Decision 7
                "router_mode", "router_update", "tau", "eps", "no_anneal", "alpha", "update_every",
                "bucket_norm", "priors", "calibration", "lang_prompt", "temperature")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written, read or resumed from; the message names the directory and why."""


class UnsafeCheckpoint(CheckpointError):
    """A trainer_state.pt whose loading would run code (Decision 3): refused, never set aside."""


def load_tokenizer(path: str):
    """The policy's tokenizer as the samplers need it: left padding, its EOS as the pad token when
    it has none."""
    from transformers import AutoTokenizer
    from transformers.utils import logging
    logging.disable_progress_bar()                              # one line per run, not one per load
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side, tok.pad_token = "left", tok.pad_token or tok.eos_token
    return tok


def load_policy(path: str, device, *, train: bool = True, shard: bool = False,
                mixed_precision: bool = False, grad_ckpt: bool = False):
    """A causal LM in fp32 (the master weights) on `device`, FSDP2-sharded when `shard`; with
    `mixed_precision` its forward and backward compute in bf16, gradients reduce in fp32; with
    `grad_ckpt` each decoder layer recomputes its activations in backward (in train() mode only,
    so generate in eval() mode: a checkpointed layer keeps no KV cache)."""
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
    model.requires_grad_(train)
    if train and grad_ckpt and hasattr(model, "activation_checkpointing_enable"):   # its newer name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    elif train and grad_ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if shard:
        shard_model(model, mixed_precision=mixed_precision)
    return model


def save_model_dir(path: str, model, tok, state_dict: dict, trainer_state: dict | None = None) -> None:
    """Rank 0: the model directory (and trainer_state.pt) at `path`, atomically (Decision 2), through
    data/outputs.write_dir: a temporary directory renamed over `path`. An existing `path` is replaced
    only if it is empty or a model directory; one holding anything else is never touched."""
    from data.outputs import write_dir

    def fill(tmp):
        model.save_pretrained(tmp, state_dict=state_dict)
        tok.save_pretrained(tmp)
        if trainer_state is not None:
            torch.save(trainer_state, os.path.join(tmp, "trainer_state.pt"))
    try:
        write_dir(path, fill)
    except Exception as e:            # OSError, torch.save's RuntimeError, safetensors' SafetensorError, OutputError
        raise CheckpointError(f"cannot write {path}: {str(e).strip().splitlines()[0]}") from None


class NonFiniteCheckpoint(CheckpointError):
    """A state to be saved holds NaN or inf (Decision 8): nothing was written."""


def non_finite(state: dict) -> str | None:
    """'N non-finite values in T tensors (names...)' for the floating tensors of a (nested) state
    dict that hold NaN or inf (a tensor under two names, as tied embeddings, counted once), or None
    when all are finite."""
    bad, seen, stack = {}, set(), [("", state)]
    while stack:
        prefix, obj = stack.pop()
        items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
        for k, v in items:
            name = f"{prefix}{k}"
            if isinstance(v, torch.Tensor) and v.is_floating_point() and (v.data_ptr(), v.shape) not in seen:
                seen.add((v.data_ptr(), v.shape))
                if not bool(torch.isfinite(v).all()):
                    bad[name] = int((~torch.isfinite(v)).sum())
            elif isinstance(v, (dict, list, tuple)):
                stack.append((name + ".", v))
    if not bad:
        return None
    names = sorted(bad)
    return (f"{sum(bad.values()):,} non-finite values in {len(bad)} tensors ({', '.join(names[:3])}"
            f"{', ...' if len(names) > 3 else ''})")


def save_policy(path: str, model, tok, group=None, trainer_state: dict | None = None) -> None:
    """The model directory at `path` (and trainer_state.pt when given), written by rank 0,
    atomically, never with a non-finite weight or optimizer moment (Decision 8); every rank learns
    rank 0's outcome. Collective: every rank calls it."""
    sd = full_state_dict(model)
    error = None
    if not dist.is_initialized() or dist.get_rank() == 0:
        if why := non_finite({"model": sd, "optimizer": (trainer_state or {}).get("optimizer", {})}):
            error = ("nan", f"{path}: not written: {why}")
        else:
            try:
                save_model_dir(path, model, tok, sd, trainer_state)
            except CheckpointError as e:
                error = ("io", str(e))
    if error := all_gather(error, group)[0]:
        raise (NonFiniteCheckpoint if error[0] == "nan" else CheckpointError)(error[1])


def save_checkpoint(out_dir: str, step: int, model, tok, opt, state: dict, group=None) -> None:
    """ckpt-STEP/: model + trainer_state.pt {step, optimizer, rng, world, **state}. Collective;
    `group` is the process group that waits for rank 0's write (one with a long timeout)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
    osd = get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    rng = all_gather({"cpu": torch.get_rng_state(),
                      "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None})
    try:
        save_policy(os.path.join(out_dir, f"ckpt-{step}"), model, tok, group,
                    {"step": step, "optimizer": osd, "rng": rng, "world": len(rng), **state})
    except NonFiniteCheckpoint as e:
        raise NonFiniteCheckpoint(f"step {step}: training diverged; {e}") from None


# ----------------------------------------------------------------------------- resume

def checkpoints(out_dir: str) -> list[tuple[int, str]]:
    """[(step, directory)] of the complete checkpoints (with trainer_state.pt), oldest first."""
    found = []
    for f in glob.glob(os.path.join(out_dir, "ckpt-*", "trainer_state.pt")):
        name = os.path.basename(os.path.dirname(f))
        if name[5:].isdigit():
            found.append((int(name[5:]), os.path.dirname(f)))
    return sorted(found)


def _safetensors_complete(path: str) -> None:
    """Raise unless the file is as long as its header says (a truncated write is not)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated ({size} bytes)")
        n = struct.unpack("<Q", head)[0]
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError):
            raise CheckpointError(f"{path}: truncated or corrupt header") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if size != 8 + n + end:
        raise CheckpointError(f"{path}: {size} bytes, its header needs {8 + n + end} (truncated)")


def load_trainer_state(ckpt_dir: str) -> dict:
    """trainer_state.pt of a checkpoint, without running code (Decision 3); errors name the file."""
    path = os.path.join(ckpt_dir, "trainer_state.pt")
    try:
        return torch.load(path, weights_only=True, mmap=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e):
            raise UnsafeCheckpoint(f"{path}: refusing to load: it holds objects beyond tensors and plain "
                                   "containers, and unpickling them would run code. This trainer never "
                                   "writes such a file; do not resume from it.") from None
        raise CheckpointError(f"{path}: unreadable ({str(e).splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{path}: unreadable ({str(e).splitlines()[0]})") from None


def choose_resume(out_dir: str, log=print) -> str | None:
    """Rank 0: the newest checkpoint that reads back (Decision 4), broken ones renamed aside."""
    for step, ckpt in reversed(checkpoints(out_dir)):
        try:
            for f in sorted(glob.glob(os.path.join(ckpt, "*.safetensors"))):
                _safetensors_complete(f)
            load_trainer_state(ckpt)
            return ckpt
        except UnsafeCheckpoint:
            raise
        except CheckpointError as e:
            aside = ckpt + ".broken"
            os.replace(ckpt, aside)
            log(f"warning: {e}; moved it to {aside} and trying the previous checkpoint")
    return None


def restore(state: dict, model, opt, rank: int) -> int:
    """Load a trainer_state into the (sharded) model's optimizer and this rank's RNG; -> the step.
    The optimizer keeps the learning rate and weight decay it was built with (this run's flags,
    Decision 7); its moments and step counts are the checkpoint's. On another world size (Decision 1)
    each rank's generators are re-seeded from the checkpoint's rank-0 state and the rank."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
    now = [{k: g[k] for k in ("lr", "weight_decay")} for g in opt.param_groups]
    set_optimizer_state_dict(model, opt, optim_state_dict=state["optimizer"],
                             options=StateDictOptions(full_state_dict=True))
    for group, hyper in zip(opt.param_groups, now):
        group.update(hyper)
    world = dist.get_world_size() if dist.is_initialized() else 1
    if len(state["rng"]) != world:
        digest = hashlib.sha256(state["rng"][0]["cpu"].numpy().tobytes() + f"rank {rank}".encode()).digest()
        torch.manual_seed(int.from_bytes(digest[:8], "little") >> 1)          # CPU and every GPU
        return state["step"]
    torch.set_rng_state(state["rng"][rank]["cpu"])
    if torch.cuda.is_available() and state["rng"][rank]["cuda"] is not None:
        torch.cuda.set_rng_state(state["rng"][rank]["cuda"])
    return state["step"]


def changed_settings(saved: dict, now: dict, keys=RUN_SETTINGS) -> list[str]:
    """'--key saved -> now' for every setting in `keys` that differs from the checkpoint's."""
    return [f"--{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in keys if saved.get(k) != now.get(k)]


def open_run(out_dir: str, resume: bool, settings: dict, force: bool = False, log=print):
    """(checkpoint directory, its trainer state) to resume from, or (None, None) for a fresh start;
    CheckpointError when a fresh run would overwrite another run's files, or the checkpoint belongs
    to another run or world size (Decisions 1, 4, 6, 7); `force` resumes anyway, warning what
    differs. Collective: rank 0 picks, every rank reads."""
    rank0 = not dist.is_initialized() or dist.get_rank() == 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if not resume:
        if why := refuse_overwrite(out_dir):
            raise CheckpointError(f"{why}: pass --resume auto to continue it, or choose another --out_dir")
        return None, None
    ckpt = all_gather(choose_resume(out_dir, log) if rank0 else None)[0]
    if ckpt is None:
        log(f"no checkpoint in {out_dir}: starting at step 0")
        return None, None
    state = load_trainer_state(ckpt)
    if state["world"] != world and not force:
        raise CheckpointError(f"{ckpt} was written by {state['world']} ranks, this run has {world}: pass "
                              "--resume_force to continue on them (per-rank sampling is then re-seeded, "
                              "not exact)")
    if (diff := changed_settings(state["args"], settings)) and not force:
        raise CheckpointError(f"{ckpt} was written with other settings: {'; '.join(diff)} (--resume_force to resume anyway)")
    if state["world"] != world:
        log(f"warning: {ckpt} was written by {state['world']} ranks, resuming on {world}: weights, "
            "optimizer, router and data order carry over; per-rank sampling and routing draws are re-seeded")
    if diff:
        log(f"warning: resuming with other settings than {ckpt}'s: {'; '.join(diff)}")
    return ckpt, state


def check_warm_start(out_dir: str, state: dict | None, needed: bool) -> None:
    """CheckpointError (one line) unless out_dir/sft/ reads back whole when present, and is present
    when `state` (a resumed checkpoint's) says the run warm-started and the reference is `needed`
    (beta > 0). Decision 9; rank 0 or every rank: it only reads."""
    sft = os.path.join(out_dir, "sft")
    if os.path.exists(os.path.join(sft, "config.json")):
        files = sorted(glob.glob(os.path.join(sft, "*.safetensors")))
        try:
            if not files:
                raise CheckpointError(f"{sft}: no *.safetensors beside its config.json")
            for f in files:
                _safetensors_complete(f)
        except CheckpointError as e:
            raise CheckpointError(f"the warm start cannot be read: {e}; " + (
                "restore it from a copy (it is this run's KL reference)" if state else
                f"remove {sft} to warm-start again")) from None
    elif state and needed and state["args"].get("sft_steps"):
        raise CheckpointError(f"{sft} is missing: the run warm-started (--sft_steps {state['args']['sft_steps']}) "
                              "and its warm start is the KL reference; restore it, or resume with --beta 0")


def refuse_overwrite(out_dir: str) -> str | None:
    """Why a fresh run may not start in out_dir (Decision 6), or None."""
    ckpts = checkpoints(out_dir)
    if ckpts:
        return f"{out_dir} holds checkpoints of an earlier run (newest {ckpts[-1][1]})"
    for name in RUN_FILES:
        path = os.path.join(out_dir, name)
        if os.path.isdir(path) or (os.path.isfile(path) and os.path.getsize(path) > 0):
            return f"{out_dir} holds {name} of an earlier run"
    return None


# ----------------------------------------------------------------------------- logs

def read_log(path: str, log=print) -> list[dict]:
    """The rows of a JSON Lines log; a half-written last line is dropped with a warning (Decision 5),
    any other bad line is an error naming the file and line."""
    return [row for _, row in read_jsonl(path, partial_tail=lambda msg: log(f"warning: {msg}"))]


def start_logs(out_dir: str, step: int, first: dict, log=print) -> tuple[str, str]:
    """Rank 0: metrics.jsonl and router.jsonl holding steps 1..step (a resumed run writes the later
    ones again); a fresh router.jsonl starts with `first`, the initial router. -> their paths."""
    paths = tuple(os.path.join(out_dir, f) for f in ("metrics.jsonl", "router.jsonl"))
    for path in paths:
        truncate_log(path, step, log)
    if not step:
        with open(paths[1], "a", encoding="utf-8") as f:
            f.write(json.dumps(first) + "\n")
    return paths


def truncate_log(path: str, step: int, log=print) -> None:
    """Keep the rows up to `step` (a resumed run writes the later ones again; step 0: none),
    atomically; the file exists afterwards."""
    rows = [r for r in read_log(path, log) if r["step"] <= step] if step and os.path.exists(path) else []
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    os.replace(path + ".tmp", path)
