"""
`python bench.py step`: LRPO training steps, timed from lrpo.py's own metrics (generate / reward /
train seconds, response tokens/s, peak memory per rank when lrpo.py logs it).

    python bench.py step                                        # lrpo.py --tiny, 2 ranks (CPU)
    python bench.py step --arch qwen2.5-1.5b [--scale S] [--steps N]   # a paper architecture, random weights
    python bench.py step --vs_trl /tmp/trl-venv/bin/python      # lrpo.py against TRL's GRPOTrainer

TRL is never a requirement of this project. For --vs_trl, install it into a throwaway virtual
environment that reuses this one's torch and transformers (checked with trl 1.16.0: pip adds
accelerate, datasets and their dependencies and leaves torch and transformers as they are):

    python -m venv --system-site-packages /tmp/trl-venv
    /tmp/trl-venv/bin/pip install trl==1.16.0

Decisions:
1. --arch: the architecture of benchmarks/memory.py (the published config) with random weights,
   saved in bf16 with a WordLevel tokenizer of exactly vocab_size entries (the family's special
   tokens, role words, then synthetic words, so any sampled id decodes to text), the family's chat
   template and stop tokens; the reward encoder is mmBERT-small-shaped with its 256,000-entry
   vocabulary. lrpo.py trains on synthetic prompts of exactly --prompt_len tokens, calibration off
   (no parallel set), no warm start. The built model's sum(numel) must equal the formula's count.
2. The paper's per-GPU shapes: K = 8, 256 prompts / 8 ranks = 32 per rank, prompts of 512 tokens
   (the maximum), 1024 new tokens. Random weights almost never sample a stop token, so responses
   run to full length (the worst case). --micro_prompts and --gen_batch_size come from the memory
   plan for the GPU found. GPUs: torchrun, one rank per GPU (lrpo.py's GPU path, one GPU too); CPU:
   one process.
3. --scale S divides the layers, prompts per rank, prompt and response lengths by S (at least 2
   layers, 1 prompt, 8 tokens) and keeps hidden size, heads and vocabulary. CPU default: S = 32
   and beta 0 (no reference copy), so fp32 weights, gradients and AdamW fit 24 GB (Gemma-3-4B, the
   largest, peaks at 20.4 GB resident). The cuts are printed.
4. lrpo.py is stopped once the last step's metrics line is written: its final checkpoint is not
   part of a step, and for Gemma-3-4B it would write ~47 GB (fp32 weights and AdamW state).
5. --vs_trl: one tiny Qwen2 policy (hidden 64, 2 layers, BPE vocabulary 600) and tokenizer for
   both trainers; 8 prompts x K = 8, the same 8 prompts every step, 32 new tokens in both (the EOS
   id lies past the policy's 600 output rows, so no rollout can stop early), temperature 1, beta 0,
   one optimizer step per batch, one CPU process each with the same OMP_NUM_THREADS. TRL's reward
   function is trivial and lrpo.py's reward time is left out: the figure is generate + train per
   step. Runs alternate (TRL, lrpo.py, TRL, ...) so machine drift hits both; each run's first step
   is a warm-up. On a machine shared with other jobs, --threads 1 keeps the two comparable (with
   two threads a busy neighbour slows these tiny ops 20-40x, unevenly). The TRL side is
   benchmarks/trl_grpo.py, run with the given interpreter.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.memory import (ARCHS, ENCODER_SPECIALS, encoder_config, make_config, numel_on_meta, param_count,
                               pick_gen_batch, pick_micro_prompts, plan)
from benchmarks.timing import table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLE_WORDS = ["user", "assistant", "system", "model"]


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def _lrpo_flag(name: str) -> bool:
    """Whether lrpo.py has the flag (some are being added while this benchmark is written)."""
    return f'"{name}"' in open(os.path.join(ROOT, "lrpo.py"), encoding="utf-8").read()


def run_lrpo(flags: list[str], out_dir: str, steps: int, nproc: int = 0, env: dict | None = None,
             timeout: float = 3600) -> list[dict]:
    """lrpo.py with `flags` (torchrun with nproc ranks if nproc, else one process) until `steps`
    metrics lines exist (decision 4); returns them. Fails with lrpo.py's output on an error."""
    launch = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc else [])
    metrics, log = os.path.join(out_dir, "metrics.jsonl"), os.path.join(out_dir, "lrpo.log")
    os.makedirs(out_dir, exist_ok=True)
    with open(log, "w") as f:
        proc = subprocess.Popen(launch + ["lrpo.py", *flags, "--out_dir", out_dir], cwd=ROOT, stdout=f,
                                stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True)
        start, rows = time.time(), []
        while proc.poll() is None and len(rows) < steps and time.time() - start < timeout:
            time.sleep(0.5)
            rows = [json.loads(l) for l in open(metrics)] if os.path.exists(metrics) else []
        if proc.poll() is None:                                    # lrpo.py and, under torchrun, its ranks
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    rows = [json.loads(l) for l in open(metrics)] if os.path.exists(metrics) else []
    if len(rows) < steps:
        raise SystemExit(f"lrpo.py stopped after {len(rows)} of {steps} steps:\n" + open(log).read()[-4000:])
    return rows[:steps]


# ----------------------------------------------------------------------------- --arch
def _word(i: int) -> str:
    """The i-th synthetic word: i in base 85, one consonant-vowel syllable per digit."""
    s = ""
    while True:
        s, i = s + "bcdfghjklmnprstvz"[i % 17] + "aeiou"[i // 17 % 5], i // 85
        if i == 0:
            return s


def word_tokenizer(out_dir: str, V: int, specials: list[str], eos: str, pad: str | None,
                   template: str | None = None):
    """A WordLevel tokenizer of exactly V entries: specials, role words, synthetic words (decision 1)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    specials = specials + [t for t in ["<unk>"] if t not in specials]
    vocab = specials + ROLE_WORDS
    vocab = {w: i for i, w in enumerate(vocab + [_word(i) for i in range(V - len(vocab))])}
    assert len(vocab) == V, f"synthetic words collide: {len(vocab)} of {V}"
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.Whitespace(), decoders.WordPiece(prefix="##")
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=pad, unk_token="<unk>")
    if template:
        fast.chat_template = template
    fast.save_pretrained(out_dir)
    return fast


def build_arch(arch: str, out_dir: str, layers: int, device: str) -> dict:
    """Policy and encoder directories for `arch` with `layers` decoder layers (decision 1)."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM
    from transformers.utils import logging
    logging.disable_progress_bar()
    a, cfg = ARCHS[arch], make_config(arch, layers)
    paths = {k: os.path.join(out_dir, k) for k in ("policy", "encoder")}
    tok = word_tokenizer(paths["policy"], cfg.vocab_size, a["specials"], a["eos"], a["pad"], a["template"])
    stops = tok.convert_tokens_to_ids(a["stops"])
    cfg.eos_token_id, cfg.pad_token_id = stops, tok.pad_token_id
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    assert n == param_count(cfg)["total"], f"{arch}: {n:,} parameters built, {param_count(cfg)['total']:,} by the formula"
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = stops, tok.pad_token_id
    model.save_pretrained(paths["policy"])
    del model
    if device == "cuda":
        torch.cuda.empty_cache()                                   # lrpo.py, a subprocess, needs the memory
    ecfg = encoder_config()
    etok = word_tokenizer(paths["encoder"], ecfg.vocab_size, ENCODER_SPECIALS, "<eos>", "<pad>")
    assert etok.pad_token_id == ecfg.pad_token_id
    with torch.device(device):
        AutoModel.from_config(ecfg, dtype=torch.bfloat16).save_pretrained(paths["encoder"])
    if device == "cuda":
        torch.cuda.empty_cache()
    return {**paths, "tokenizer": tok, "config": cfg}


def synthetic_questions(tok, n: int, prompt_len: int) -> list[str]:
    """n questions of synthetic words whose prompt as lrpo.py builds it (data/prompts.py: question,
    language tag, chat template) is exactly prompt_len tokens in every language."""
    from data.prompts import prompt_tokens
    from reward import LANGUAGES
    n_words = prompt_len - (prompt_tokens(tok, _word(0), LANGUAGES) - 1)
    assert n_words >= 1, f"--prompt_len {prompt_len} is shorter than the chat template"
    qs = [" ".join(_word((i * 7919 + j * 104729) % 5000) for j in range(n_words)) for i in range(n)]
    assert prompt_tokens(tok, qs[0], LANGUAGES) == prompt_len
    return qs


def synthetic_train(path: str, tok, n_items: int, prompt_len: int) -> None:
    """n_items training records of synthetic_questions, in the training languages by turns."""
    from reward import LANGUAGES
    langs = [l for l in LANGUAGES if l != "en"]
    with open(path, "w", encoding="utf-8") as f:
        for i, q in enumerate(synthetic_questions(tok, n_items, prompt_len)):
            f.write(json.dumps({"id": f"s{i}", "question": q, "reference": " ".join(q.split()[:64]),
                                "lang": langs[i % len(langs)], "topic": "General Knowledge", "region": []}) + "\n")


def arch_settings(a, world: int, budget: float | None) -> dict:
    """Layers, shapes and micro-batching of an --arch run (decisions 2-3); prints what --scale cut.
    budget: bytes per GPU the memory plan may use (None: CPU)."""
    cuda = budget is not None
    S, full = a.scale or (1 if cuda else 32), make_config(a.arch)
    layers = max(2, round(full.num_hidden_layers / S)) if S > 1 else full.num_hidden_layers
    P_local, P, R = max(1, 32 // S), max(8, a.prompt_len // S), max(8, a.new_tokens // S)
    beta = a.beta if a.beta is not None else (0.001 if cuda else 0.0)
    cfg = make_config(a.arch, layers)
    kw = dict(world=world, K=8, P=P, R=R, beta=beta, encoder_params=numel_on_meta(encoder_config(), causal_lm=False))
    m, G, ckpt = a.micro_prompts or P_local, P_local * 8, False      # CPU: one micro-batch, one generation batch
    if cuda:
        G = pick_gen_batch(cfg, G, budget, **kw) or 8
        m = a.micro_prompts or pick_micro_prompts(cfg, P_local, budget, gen_batch=G, **kw)
        if m is None:                                           # Gemma-3-4B: only with --grad_ckpt
            ckpt = True
            m = pick_micro_prompts(cfg, P_local, budget, gen_batch=G, checkpointing=True, **kw) or 1
            print(f"the memory plan fits no --micro_prompts in {budget / 1e9:.0f} GB per GPU without gradient "
                  f"checkpointing (bench.py memory): --grad_ckpt --micro_prompts {m}")
    if S > 1:
        types = f" {cfg.layer_types}" if "layer_types" in ARCHS[a.arch]["config"] else ""
        print(f"--scale {S} cut: decoder layers {full.num_hidden_layers} -> {layers}{types}; prompts per rank "
              f"32 -> {P_local}; prompt tokens {a.prompt_len} -> {P}; new tokens {a.new_tokens} -> {R}; kept: "
              f"hidden {cfg.hidden_size}, heads {cfg.num_attention_heads} (KV {cfg.num_key_value_heads}), vocabulary "
              f"{cfg.vocab_size:,}; beta {beta}" + ("" if cuda else " (no reference copy on CPU)"))
    return dict(cfg=cfg, layers=layers, P_local=P_local, P=P, R=R, beta=beta, m=m, G=G, ckpt=ckpt, kw=kw)


def arch_main(a) -> None:
    import torch
    cuda = torch.cuda.is_available()
    world = torch.cuda.device_count() if cuda else 1
    print(f"{a.arch}: the {ARCHS[a.arch]['hub']} architecture with random weights, {world} "
          f"{'GPU rank(s) under torchrun' if cuda else 'CPU process'}")
    s = arch_settings(a, world, 0.9 * torch.cuda.get_device_properties(0).total_memory if cuda else None)
    cfg, n = s["cfg"], param_count(s["cfg"])["total"]
    with tempfile.TemporaryDirectory() as d:
        t0 = time.time()
        built = build_arch(a.arch, d, s["layers"], "cuda" if cuda else "cpu")
        train = os.path.join(d, "train.jsonl")
        synthetic_train(train, built["tokenizer"], s["P_local"] * world * max(a.steps, 2), s["P"])
        print(f"built in {time.time() - t0:.0f} s: policy {n:,} parameters (formula = sum of numel), "
              f"encoder {s['kw']['encoder_params']:,}")
        flags = ["--model", built["policy"], "--encoder", built["encoder"], "--train_file", train,
                 "--calibration", "none", "--K", "8", "--prompts_per_step", str(s["P_local"] * world),
                 "--max_prompt_len", str(s["P"]), "--max_new_tokens", str(s["R"]), "--gen_batch_size", str(s["G"]),
                 "--micro_prompts", str(s["m"]), "--beta", str(s["beta"]), "--max_steps", str(a.steps),
                 "--sft_steps", "0", "--save_every", "1000000", "--seed", "0"]
        flags += (["--sampler", a.sampler] if a.sampler else []) + (["--grad_ckpt"] if s["ckpt"] else [])
        load = " ".join(open("/proc/loadavg").read().split()[:3])
        rows = run_lrpo(flags, os.path.join(d, "out"), a.steps, nproc=world if cuda else 0)
    sampler = a.sampler or ("ours (lrpo.py's default)" if _lrpo_flag("--sampler") else "transformers generate()")
    print(f"K = 8 x {s['P_local']} prompts per rank, P + R = {s['P']} + {s['R']} tokens, --micro_prompts {s['m']}, "
          f"--gen_batch_size {s['G']}, sampler {sampler}; load average before the run: {load}")
    print(table([{"step": r["step"], "generate s": f"{r['t_generate']:.2f}", "reward s": f"{r['t_reward']:.2f}",
                  "train s": f"{r['t_train']:.2f}", "response tokens": f"{r['response_len']:.0f}",
                  "response tokens/s (all ranks)": f"{r['tokens_per_s']:.0f}",
                  "peak memory per rank (GB)": f"{r['peak_mem_gb']:.2f}" if "peak_mem_gb" in r else "n/a"}
                 for r in rows]))
    if len(rows) > 1:
        med = {k: _median([r[k] for r in rows[1:]]) for k in ("t_generate", "t_reward", "t_train", "tokens_per_s")}
        print(f"median of steps 2..{len(rows)}: generate {med['t_generate']:.2f} s, reward {med['t_reward']:.2f} s, "
              f"train {med['t_train']:.2f} s, {med['tokens_per_s']:.0f} response tokens/s")
    if cuda:
        p = plan(cfg, micro_prompts=s["m"], gen_batch=s["G"], **s["kw"])
        print(f"memory plan for this run (benchmarks/memory.py): generation peak {p['generation peak'] / 1e9:.1f} GB, "
              f"training peak {p['training peak'] / 1e9:.1f} GB per rank")
    else:
        print(f"CPU, one fp32 process: weights + gradients + AdamW = 16 B x {n:,} = {16 * n / 1e9:.1f} GB before "
              f"activations (peak memory: the process's max resident set; the GPU plan: bench.py memory)")


# ----------------------------------------------------------------------------- --vs_trl
def build_trl_policy(out_dir: str, questions: list[str]) -> dict:
    """The tiny policy both trainers run (decision 5): a BPE of 600 entries trained on `questions`
    plus an EOS appended at id 600, and a Qwen2 whose output layer has 600 rows."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
    from transformers.utils import logging
    from data.tiny import CHAT_TEMPLATE, build_encoder
    logging.disable_progress_bar()

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator(questions, trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|pad|>", "<|im_start|>", "<|im_end|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    V = tok.get_vocab_size()
    tok.add_special_tokens(["<|eos|>"])                          # id V: past the policy's output rows
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|eos|>")
    fast.chat_template = CHAT_TEMPLATE                           # turns end with <|im_end|>, not EOS
    policy = os.path.join(out_dir, "policy")
    fast.save_pretrained(policy)
    config = Qwen2Config(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, pad_token_id=fast.pad_token_id, eos_token_id=None,
                         bos_token_id=None)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(policy)
    assert fast.eos_token_id == V
    return {"policy": policy, "encoder": build_encoder(policy, os.path.join(out_dir, "encoder")),
            "tokenizer": fast, "V": V}


def vs_trl_main(a) -> None:
    from data.prompts import build_prompt
    from reward import LANGUAGES
    items = [json.loads(l) for l in open(os.path.join(ROOT, "data/sample/train.jsonl"), encoding="utf-8")]
    items = [it for it in items if it["topic"] != "Translation"]
    picked = [next(it for it in items if it["lang"] == l) for l in [l for l in LANGUAGES if l != "en"][:8]]
    env = {"OMP_NUM_THREADS": str(a.threads), "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false"}
    sampler = a.sampler or ("ours" if _lrpo_flag("--sampler") else None)
    with tempfile.TemporaryDirectory() as d:
        built = build_trl_policy(d, [it["question"] for it in items] + [it["reference"] for it in items])
        tok = built["tokenizer"]
        train = os.path.join(d, "train8.jsonl")
        with open(train, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(it, ensure_ascii=False) + "\n" for it in picked)
        prompts = [build_prompt(tok, it["question"], it["lang"]) for it in picked]   # lrpo.py's own prompts
        json.dump(prompts, open(os.path.join(d, "prompts.json"), "w"))
        flags = ["--model", built["policy"], "--encoder", built["encoder"], "--train_file", train,
                 "--calibration", "none", "--K", "8", "--prompts_per_step", "8", "--max_new_tokens", "32",
                 "--temperature", "1.0", "--top_p", "1.0", "--gen_batch_size", "64", "--micro_prompts", "8",
                 "--beta", "0", "--lr", "1e-5", "--max_steps", str(a.steps), "--sft_steps", "0",
                 "--save_every", "1000000", "--kernel", "torch", "--seed", "0"]
        flags += ["--sampler", sampler] if sampler else []
        ours, trl, lens, load = [], [], set(), []
        for r in range(a.rounds):
            load.append(open("/proc/loadavg").read().split()[0])
            out = os.path.join(d, f"trl{r}.json")
            subprocess.run([a.vs_trl, os.path.join(ROOT, "benchmarks", "trl_grpo.py"), "--model", built["policy"],
                            "--prompts", os.path.join(d, "prompts.json"), "--steps", str(a.steps), "--out", out,
                            "--out_dir", os.path.join(d, f"trl{r}")], cwd=ROOT, env={**os.environ, **env},
                           check=True, capture_output=True)
            res = json.load(open(out))
            trl.append(_median(res["step_s"][1:]))
            lens |= set(res["completion_lengths"])
            rows = run_lrpo(flags, os.path.join(d, f"lrpo{r}"), a.steps, env=env)
            ours.append(_median([x["t_generate"] + x["t_train"] for x in rows[1:]]))
            lens |= {x["response_len"] for x in rows}
            print(f"round {r + 1}: TRL {1e3 * trl[-1]:.0f} ms, lrpo.py {1e3 * ours[-1]:.0f} ms "
                  f"(generate {1e3 * _median([x['t_generate'] for x in rows[1:]]):.0f} + train "
                  f"{1e3 * _median([x['t_train'] for x in rows[1:]]):.0f}), ratio {ours[-1] / trl[-1]:.2f}x")
    print(f"\nTRL {res['trl_version']} GRPOTrainer vs lrpo.py (sampler: {sampler or 'transformers generate()'}), "
          f"one CPU process each, "
          f"OMP_NUM_THREADS={a.threads}; tiny Qwen2 (hidden 64, 2 layers, vocabulary {built['V']}), 8 prompts x K = 8, "
          f"32 new tokens (response lengths seen: {sorted(lens)}), beta 0, median of steps 2..{a.steps} per run, "
          f"{a.rounds} alternating rounds; load average at each round: {' '.join(load)}")
    print(table([{"round": i + 1, "TRL ms per step": f"{1e3 * t:.0f}", "lrpo.py generate + train ms": f"{1e3 * o:.0f}",
                  "lrpo / TRL": f"{o / t:.2f}x"} for i, (t, o) in enumerate(zip(trl, ours))]
                + [{"round": "median", "TRL ms per step": f"{1e3 * _median(trl):.0f}",
                    "lrpo.py generate + train ms": f"{1e3 * _median(ours):.0f}",
                    "lrpo / TRL": f"{_median([o / t for o, t in zip(ours, trl)]):.2f}x (target <= 0.5x)"}]))


# ----------------------------------------------------------------------------- the --tiny split
def tiny_main(steps: int = 10) -> None:
    with tempfile.TemporaryDirectory() as d:
        rows = run_lrpo(["--tiny", "--sft_steps", "0", "--max_steps", str(steps)], d, steps, nproc=2,
                        env={"OMP_NUM_THREADS": "1"})[1:]                       # step 1 warms up
    med = {k: _median([r[k] for r in rows]) for k in ("t_generate", "t_reward", "t_train")}
    total = sum(med.values())
    print(f"lrpo.py --tiny under torchrun --nproc_per_node=2: median over steps 2..{steps} "
          f"(8 prompts x K=8 rollouts, 24 new tokens, rank 0's clock)")
    print(table([{"stage": k[2:], "s per step": f"{v:.3f}", "share": f"{100 * v / total:.0f}%"} for k, v in med.items()]
                + [{"stage": "total", "s per step": f"{total:.3f}", "share": "100%"}]))


def main(argv=()):
    ap = argparse.ArgumentParser(prog="bench.py step", description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), help="a paper architecture with random weights (decision 1)")
    ap.add_argument("--vs_trl", metavar="PYTHON", help="interpreter of a virtual environment with TRL (decision 5)")
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default: 3 --arch, 8 --vs_trl, 10 tiny)")
    ap.add_argument("--scale", type=int, default=None, help="divide layers, prompts and lengths by S (default: GPU 1, CPU 32)")
    ap.add_argument("--prompt_len", type=int, default=512, help="prompt tokens before --scale")
    ap.add_argument("--new_tokens", type=int, default=1024, help="response tokens before --scale")
    ap.add_argument("--micro_prompts", type=int, default=None, help="default: the memory plan's largest that fits")
    ap.add_argument("--beta", type=float, default=None, help="KL coefficient (default: 0.001 on GPU, 0 on CPU)")
    ap.add_argument("--sampler", choices=["ours", "hf"], default=None, help="lrpo.py --sampler (default: lrpo.py's)")
    ap.add_argument("--rounds", type=int, default=3, help="--vs_trl: alternating rounds")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="--vs_trl: OMP_NUM_THREADS for both")
    a = ap.parse_args(list(argv))
    if a.arch:
        a.steps = a.steps or 3
        arch_main(a)
    elif a.vs_trl:
        a.steps = a.steps or 8
        vs_trl_main(a)
    else:
        tiny_main(a.steps or 10)
