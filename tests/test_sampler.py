"""sampler.py against transformers' generate() (greedy: the same tokens), the training forward (the
same log-probs), truncation by hand (stops) and exact frequencies (sampling), on three tiny families."""
import warnings

import pytest
import torch

from grpo import response_logits, token_logprobs
from sampler import generate_rollouts, response_mask, sample, stop_token_ids

FAMILIES = ("qwen2", "llama", "gemma3")
QUESTIONS = ("Hi", "Bonjour tout le monde, ça va ?", "今天天气很好。", "x",
             "Das Wetter ist heute schön, deshalb gehen wir.")


@pytest.fixture(scope="module")
def family_dirs(tiny_dirs, tmp_path_factory):
    from data.tiny import build_policy
    root = tmp_path_factory.mktemp("families")
    return {"qwen2": tiny_dirs["policy"],
            **{f: build_policy(tiny_dirs["tokenizer"], str(root / f), family=f) for f in ("llama", "gemma3")}}


def load(path: str, noise: float = 0.3, **kw):
    """Model and tokenizer as lrpo.py loads them (pad = EOS where the family has none). Weight
    matrices but the (tied) embeddings get extra noise: at init (std 0.02) logits are near-uniform
    and greedy decoding repeats one token; noisy embeddings make Gemma-3 (which scales them by
    sqrt(hidden)) repeat one token too."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, **kw)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embed" not in name:
                p.add_(noise * torch.randn(p.shape, generator=g))
    return model, tok


def chat(tok, questions=QUESTIONS):
    msgs = [[{"role": "system", "content": "Be brief."}] * (i % 2) + [{"role": "user", "content": q}]
            for i, q in enumerate(questions)]
    return [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in msgs]


# ----------------------------------------------------------------------------- helpers moved from grpo.py

def test_response_mask_keeps_the_first_eos_and_nothing_after():
    resp = torch.tensor([[5, 6, 2, 7, 2], [2, 9, 9, 9, 9], [5, 5, 5, 5, 5]])
    assert response_mask(resp, 2).tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]
    # several stop ids (Gemma-3: <eos> and <end_of_turn>): the first of any ends the response
    assert response_mask(resp, [9, 6]).tolist() == [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]


def test_stop_token_ids_merge_tokenizer_and_generation_config():
    from types import SimpleNamespace
    tok = SimpleNamespace(eos_token_id=1)
    gemma = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[1, 106]))
    assert stop_token_ids(gemma, tok) == [1, 106]
    assert stop_token_ids(SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=7)), tok) == [1, 7]


@pytest.mark.parametrize("sampler", ["hf", "ours"])
def test_generate_rollouts_layout_and_logprobs(tiny_policy_dir, tiny_tokenizer, sampler):
    """Left-padded prompts + responses padded after EOS; response_logits reproduces, on the padded
    batch, the log-probs of each sequence computed alone without padding."""
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    tok = tiny_tokenizer
    prompts = chat(tok, ("Hi", "Bonjour tout le monde, ça va ?"))
    ids, am, P = generate_rollouts(model, tok, prompts, max_new_tokens=8, batch_size=1, sampler=sampler)
    R = ids.shape[1] - P
    assert 1 <= R <= 8 and am[0, :P].sum() < am[1, :P].sum()       # the short prompt is left-padded
    assert ((ids[:, P:] == tok.pad_token_id) | (am[:, P:] == 1)).all()
    logp = token_logprobs(response_logits(model, ids, am, R), ids[:, P:])          # (2, R)
    for i in range(2):
        real = ids[i][am[i] == 1][None]                                          # no padding at all
        n = int(am[i, P:].sum())
        alone = token_logprobs(model(real).logits[:, -n - 1:-1], real[:, -n:])[0]
        torch.testing.assert_close(logp[i, :n], alone, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- greedy = generate()

@pytest.mark.parametrize("family, attn", [("qwen2", "sdpa"), ("llama", "sdpa"), ("gemma3", "sdpa"),
                                          ("gemma3", "eager")])
def test_greedy_matches_generate(family_dirs, family, attn):
    model, tok = load(family_dirs[family], attn_implementation=attn)
    prompts = chat(tok)
    ours = generate_rollouts(model, tok, prompts, 24, batch_size=3, greedy=True)
    ref = generate_rollouts(model, tok, prompts, 24, batch_size=3, greedy=True, sampler="hf")
    assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1]) and ours[2] == ref[2]
    ids, am, P = ours
    assert len(set(ids[:, P:].flatten().tolist())) > 20               # real sequences, not one token
    assert len(set(am[:, :P].sum(1).tolist())) > 3                     # prompts of different lengths
    if family == "gemma3":                                             # the sliding window (8) matters
        assert am[:, :P].sum(1).min() > model.config.sliding_window


# ----------------------------------------------------------------------------- sampled log-probs

@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_sampled_logprobs_match_training_forward(family_dirs, family, temperature, top_p):
    model, tok = load(family_dirs[family])
    g = torch.Generator().manual_seed(1)
    ids, am, P, logp = generate_rollouts(model, tok, chat(tok), 16, temperature, top_p, batch_size=2,
                                         return_logprobs=True, generator=g)
    R = ids.shape[1] - P
    rmask = am[:, P:]
    train = token_logprobs(response_logits(model, ids, am, R), ids[:, P:], temperature) * rmask
    assert logp.dtype == torch.float32 and logp.shape == rmask.shape
    assert (logp[rmask == 0] == 0).all() and (logp[rmask == 1] < 0).all()
    torch.testing.assert_close(logp, train.detach(), rtol=0, atol=1e-4)   # ratio 1 at the start
    again = generate_rollouts(model, tok, chat(tok), 16, temperature, top_p, batch_size=2,
                              return_logprobs=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again[0], ids)                                   # a generator reproduces


def test_sample_frequencies_and_nucleus():
    """One draw per row of 40,000 rows of the same distribution: frequencies match the (nucleus-
    renormalised) probabilities; the log-probs are those of the full tempered softmax."""
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = p.log().expand(40000, 4) * 2.0                         # temperature 2 undoes the * 2
    g = torch.Generator().manual_seed(0)
    for top_p, want in ((1.0, p), (0.75, torch.tensor([0.625, 0.375, 0.0, 0.0]))):
        tok, logp = sample(logits, temperature=2.0, top_p=top_p, generator=g)
        freq = torch.bincount(tok, minlength=4).double() / len(tok)
        torch.testing.assert_close(freq, want.double(), rtol=0, atol=0.01)
        torch.testing.assert_close(logp, p.log()[tok], rtol=0, atol=1e-6)
    tok, _ = sample(logits, 2.0, greedy=True)
    assert (tok == 0).all()


# ----------------------------------------------------------------------------- stops

def truncate(resp: torch.Tensor, stops, pad: int) -> list[list[int]]:
    """The obvious reference: each row cut after its first stop id, then right-padded to the longest."""
    rows = []
    for r in resp.tolist():
        cut = next((i + 1 for i, t in enumerate(r) if t in stops), len(r))
        rows.append(r[:cut])
    R = max(map(len, rows))
    return [r + [pad] * (R - len(r)) for r in rows]


class Counter:
    """Counts the policy's forward calls (prefill + decode steps)."""
    def __init__(self, model):
        self.n = 0
        model.register_forward_pre_hook(lambda *_: setattr(self, "n", self.n + 1))


@pytest.mark.parametrize("family", FAMILIES)
def test_several_stop_ids_first_token_stop_and_max_length(family_dirs, family):
    """Greedy decoding is deterministic, so adding stop ids must cut the unconstrained sequences
    after their first stop and change nothing before it; both samplers agree."""
    model, tok = load(family_dirs[family])
    prompts, n = chat(tok), 12
    free = generate_rollouts(model, tok, prompts, n, greedy=True)
    resp = free[0][:, free[2]:]
    assert resp.shape[1] == n and (free[1][:, free[2]:] == 1).all()    # no row stopped by itself
    extra = [int(resp[0, 3]), int(resp[1, 0])]                          # row 1 stops at its first token
    others = [i for i in range(len(prompts)) if not set(resp[i].tolist()) & set(extra)]
    assert others, "pick other stop tokens: every row would stop"
    model.generation_config.eos_token_id = stop_token_ids(model, tok) + extra
    counter = Counter(model)
    for sampler in ("ours", "hf"):
        ids, am, P = generate_rollouts(model, tok, prompts, n, greedy=True, sampler=sampler)
        assert ids[:, P:].tolist() == truncate(resp, extra, tok.pad_token_id), sampler
        lengths = am[:, P:].sum(1)
        assert lengths[1] == 1 and lengths[0] <= 4 and (lengths[others] == n).all()
    # every row stops at its first token: the prefill is the only forward pass
    model.generation_config.eos_token_id = stop_token_ids(model, tok) + resp[:, 0].tolist()
    counter.n = 0
    ids, am, P = generate_rollouts(model, tok, prompts, n, greedy=True)
    assert counter.n == 1 and ids.shape[1] == P + 1 and (am[:, P:] == 1).all()


def test_loop_ends_when_every_row_has_stopped(family_dirs):
    model, tok = load(family_dirs["qwen2"])
    prompts, n = chat(tok), 12
    counter = Counter(model)
    free = generate_rollouts(model, tok, prompts, n, greedy=True, batch_size=2)
    resp = free[0][:, -n:]
    assert (free[1][:, -n:] == 1).all() and counter.n == 3 * n         # 3 batches, no row stopped
    # the stop set: each row's token at step 2 + (row % 3), so every row has stopped by step 4
    stops = {int(resp[i, 2 + i % 3]) for i in range(len(prompts))}
    first = [next(t for t, x in enumerate(r) if x in stops) for r in resp.tolist()]
    model.generation_config.eos_token_id = stop_token_ids(model, tok) + sorted(stops)
    counter.n = 0
    ids, am, P = generate_rollouts(model, tok, prompts, n, greedy=True)
    assert am[:, P:].sum(1).tolist() == [f + 1 for f in first]
    assert counter.n == max(first) + 1 < n                              # prefill + one call per later token


# ----------------------------------------------------------------------------- errors, devices

def test_bad_arguments_fail_clearly(tiny_policy_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    with pytest.raises(ValueError, match="sampler must be one of"):
        generate_rollouts(model, tiny_tokenizer, ["a"], 4, sampler="vllm")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        generate_rollouts(model, tiny_tokenizer, ["a"], 4, temperature=0.0)
    with pytest.raises(ValueError, match="return_logprobs needs sampler='ours'"):
        generate_rollouts(model, tiny_tokenizer, ["a"], 4, sampler="hf", return_logprobs=True)
    right = AutoTokenizer.from_pretrained(tiny_policy_dir)
    right.padding_side = "right"
    with pytest.raises(ValueError, match="pad on the left"):
        generate_rollouts(model, right, ["a", "bb"], 4)


def test_rewound_step_redoes_the_same_step(family_dirs):
    """The CUDA-graph check replays a step, rewinds one cache column and redoes it eagerly: on CPU,
    a rewound step must give the same logits and leave the cache one column further."""
    from transformers.cache_utils import Cache, StaticLayer
    from sampler import StaticDecoder
    model, tok = load(family_dirs["gemma3"])
    enc = tok(chat(tok), return_tensors="pt", padding=True, add_special_tokens=False)
    B, P = enc["input_ids"].shape
    cache = Cache(layers=[StaticLayer(max_cache_len=P + 4) for _ in range(model.config.num_hidden_layers)])
    valid = torch.zeros(B, P + 4, dtype=torch.bool)
    valid[:, :P] = enc["attention_mask"].bool()
    pos = (enc["attention_mask"].cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        model(**enc, position_ids=pos, cache=cache, use_cache=True)
        decoder = StaticDecoder(model, cache, valid, P, cuda_graph=False)
        tok1, nxt = torch.arange(B) + 5, pos[:, -1] + 1
        first = decoder.step(tok1, nxt).clone()
        decoder._rewind()
        assert torch.equal(decoder.step(tok1, nxt), first)
    assert int(decoder.cur) == P + 1 and all(int(l.cumulative_length) == P + 1 for l in cache.layers)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("family", FAMILIES)
def test_cuda_graph_matches_eager(family_dirs, family):
    model, tok = load(family_dirs[family])
    model.cuda()
    prompts = chat(tok)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                # a fallback warning fails
        graph = generate_rollouts(model, tok, prompts, 24, greedy=True, cuda_graph=True)
    eager = generate_rollouts(model, tok, prompts, 24, greedy=True, cuda_graph=False)
    assert torch.equal(graph[0], eager[0]) and torch.equal(graph[1], eager[1])


def test_fsdp2_generation_does_not_deadlock_and_trains_after(torchrun, tiny_policy_dir):
    proc = torchrun("tests/dist_sampler.py", tiny_policy_dir, timeout=240)
    assert proc.stdout.count("generation ok") == 2 and "matches one process" in proc.stdout, proc.stdout
