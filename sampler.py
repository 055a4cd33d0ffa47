"""
Rollout generation for GRPO: our sampler (a static KV cache, pre-built attention masks, fp32
sampling, CUDA graphs on GPU) and transformers' generate() as the reference path.

    from sampler import generate_rollouts
    with grpo.unsharded(model):                  # under FSDP2; a plain module needs no wrapper
        ids, am, P = generate_rollouts(model, tok, prompts, max_new_tokens=512, temperature=1.0)
    resp, rmask = ids[:, P:], am[:, P:]          # (N, R) response ids and mask (1 up to the stop)

Decisions:
1. The caller gathers FSDP2 parameters (`grpo.unsharded`), so this file imports nothing of ours.
   A model whose parameters are still sharded (DTensors) is refused: a sharded forward all-gathers,
   and ranks that stop decoding at different lengths would deadlock.
2. Layout (both samplers): each batch of prompts is left-padded to P, the longest prompt of the
   whole call; a response ends at its first stop id (tokenizer EOS + generation_config EOS, see
   stop_token_ids), which it keeps; finished rows emit pad; R is the longest response. Position ids
   skip the left padding (cumsum of the mask - 1), as grpo.response_logits and generate() do, so
   the training forward scores exactly the distribution the tokens were drawn from.
3. Sampling is plain (no top-k, no repetition penalty, whatever generation_config says): fp32
   softmax(logits / temperature), optionally cut to the nucleus top_p, one uniform per row against
   the cumulative distribution (what torch.multinomial does, at a fraction of its cost on CPU).
   The log-prob returned for a token is that of the full tempered softmax, what training computes;
   with top_p < 1 the token was drawn from the renormalised nucleus instead (as with generate()).
4. The KV cache is transformers' StaticLayer (what StaticCache holds for full-attention layers) on
   every layer, L = P + max_new_tokens columns, column j = position j of the padded sequence.
   Sliding-window layers (Gemma-3) get the same full-length layer and see their window through the
   mask (key j visible iff j > i - window, as masking_utils builds it): the rolling buffer of
   StaticSlidingWindowLayer keeps Python-side state that a replayed graph would not update. Cost:
   those layers hold L instead of min(L, window) columns.
5. Decode steps do not call transformers' mask building: a (B, L) bool `valid` buffer (prompt mask,
   then one column per step) becomes the 4-D mask (bool for sdpa, additive for eager attention).
   The step reads only static buffers and device tensors (no host sync), so on CUDA it is captured
   once per batch as a CUDA graph after two eager warm-up steps on a side stream, and replayed per
   token. The first replay is checked against an eager step; a failed capture or a disagreement
   falls back to eager decoding with a one-line warning. FSDP2's forward hooks are switched off
   during decoding (the parameters are already gathered): its root hook makes the all-gather
   streams wait on the current stream, which would drag them into the capture.
   NOT YET RUN ON A GPU: the CUDA-graph path (warm-up, capture, replay, check, fallback) is written
   from PyTorch's CUDA-graph docs and has never run; the step it captures has run eagerly on CPU.
6. Graphs live for one batch of one call: a graph records buffer addresses, and FSDP2 may allocate
   the gathered parameters elsewhere after each optimizer step. Memory: the graph's private pool
   (one decode step's activations and the (B, V) logits), freed when the batch ends; no weight copy.
7. The loop stops as soon as every row has stopped (one host sync per step).
"""
import contextlib
import warnings

import torch
import torch.nn.functional as F

SAMPLERS = ("ours", "hf")


# ----------------------------------------------------------------------------- stops and masks

def stop_token_ids(model, tok) -> list[int]:
    """Every id that ends a turn: the tokenizer's EOS and the model's generation_config ones
    (Gemma-3 ends turns with <end_of_turn>, not its tokenizer's <eos>; Llama-3 has several)."""
    ids = {tok.eos_token_id}
    cfg = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(cfg if isinstance(cfg, (list, tuple)) else [cfg])
    return sorted(i for i in ids if i is not None)


def response_mask(resp: torch.Tensor, eos_ids) -> torch.Tensor:
    """(N, R) generated ids -> (N, R) long: 1 up to and including the first stop token, 0 after."""
    eos = torch.isin(resp, torch.as_tensor(eos_ids, dtype=resp.dtype, device=resp.device))
    after = (eos.cumsum(1) - eos.long()) > 0                        # strictly after the first stop
    return (~after).long()


# ----------------------------------------------------------------------------- sampling

def sample(logits: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0, greedy: bool = False,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, V) logits -> tokens (B,) int64 and their log-probs (B,) fp32 under softmax(logits / T).

    One exp pass serves both: log p = x - max - log(sum exp(x - max)), log_softmax's own formula.
    """
    x = logits.float()
    if temperature != 1.0:
        x = x / temperature                                         # (B, V) fp32
    m = x.amax(dim=-1, keepdim=True)
    e = torch.exp(x - m)                                            # (B, V) unnormalised probabilities
    if greedy:
        tok = x.argmax(dim=-1)
    else:
        p, order = e, None
        if top_p < 1.0:                    # the smallest head of the sorted distribution holding top_p
            p, order = e.sort(dim=-1, descending=True)
            c = p.cumsum(-1)
            p = p.masked_fill(c - p >= top_p * c[:, -1:], 0.0)
        cdf = p.cumsum(-1)                                          # (B, V)
        u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device) * cdf[:, -1:]
        tok = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[1] - 1).squeeze(1)
        if order is not None:
            tok = order.gather(1, tok[:, None]).squeeze(1)
    logp = x.gather(1, tok[:, None]).squeeze(1) - m.squeeze(1) - e.sum(-1).log()
    return tok, logp


# ----------------------------------------------------------------------------- our decoder

@contextlib.contextmanager
def _fsdp_hooks_off(model):
    """Switch FSDP2's forward hooks off for the block (parameters already gathered; decision 5)."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:                                             # torch built without distributed
        yield
        return
    saved = [(m, m._forward_pre_hooks, m._forward_hooks) for m in model.modules() if isinstance(m, FSDPModule)]
    for m, _, _ in saved:
        m._forward_pre_hooks, m._forward_hooks = type(m._forward_pre_hooks)(), type(m._forward_hooks)()
    try:
        yield
    finally:
        for m, pre, post in saved:
            m._forward_pre_hooks, m._forward_hooks = pre, post


class StaticDecoder:
    """One decode step over static buffers (decisions 4-6): `step(tok, pos)` -> (B, V) logits.

    cache: a transformers Cache of StaticLayer, prefilled with P columns; valid: (B, L) bool, the
    prompt's attention mask in its first P columns.
    """

    def __init__(self, model, cache, valid: torch.Tensor, P: int, cuda_graph: bool):
        cfg = model.config.get_text_config(decoder=True)
        self.impl = cfg._attn_implementation
        if self.impl not in ("sdpa", "eager"):
            raise ValueError(f"sampler='ours' builds sdpa or eager attention masks, not {self.impl!r}: "
                             "load the model with attn_implementation='sdpa', or use sampler='hf'")
        types = list(getattr(cfg, "layer_types", None) or ["full_attention"])
        unknown = set(types) - {"full_attention", "sliding_attention"}
        if unknown or getattr(cfg, "use_bidirectional_attention", False):
            raise ValueError("sampler='ours' knows causal full and sliding-window attention, not "
                             f"{sorted(unknown) or 'bidirectional attention'}: use sampler='hf'")
        self.windows = {t: cfg.sliding_window if t == "sliding_attention" else None for t in set(types)}
        self.model, self.cache, self.valid = model, cache, valid
        B, L = valid.shape
        dev = valid.device
        self.ids = torch.zeros(B, 1, dtype=torch.long, device=dev)   # static inputs of the step
        self.pos = torch.zeros(B, 1, dtype=torch.long, device=dev)
        self.cur = torch.tensor([P], device=dev)                    # cache column of the new token
        self.cols = torch.arange(L, device=dev)
        self.dtype = model.get_input_embeddings().weight.dtype
        self.graph, self.logits, self.warm = None, None, 0
        self.cuda_graph = cuda_graph and dev.type == "cuda"
        self.side = torch.cuda.Stream() if self.cuda_graph else None

    def _masks(self):
        """The 4-D masks of this step: one tensor, or {layer type: mask} for mixed models."""
        masks = {}
        for t, w in self.windows.items():
            m = self.valid if w is None else self.valid & (self.cols > self.cur - w)   # (B, L)
            m = m[:, None, None, :]                                 # (B, 1, 1, L)
            if self.impl == "eager":
                m = (~m).to(self.dtype) * torch.finfo(self.dtype).min
            masks[t] = m
        return masks if len(masks) > 1 else next(iter(masks.values()))

    def _forward(self) -> torch.Tensor:
        """The captured region: device ops on static buffers only."""
        self.valid.index_fill_(1, self.cur, True)
        out = self.model(input_ids=self.ids, position_ids=self.pos, attention_mask=self._masks(),
                         cache=self.cache, use_cache=True).logits[:, -1]     # (B, V)
        self.cur.add_(1)
        return out

    def _rewind(self):
        """Undo one step's column (the cache is overwritten in place next time)."""
        self.cur.sub_(1)
        for layer in self.cache.layers:
            layer.crop(-1)

    def step(self, tok: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """tok, pos: (B,) the new token and its position id -> (B, V) next-token logits."""
        self.ids.copy_(tok[:, None])
        self.pos.copy_(pos[:, None])
        if self.graph is not None:
            self.graph.replay()
            return self.logits
        if not self.cuda_graph:
            return self._forward()
        if self.warm < 2:       # warm up on the capture's own side stream: per-stream cuBLAS handles
            main = torch.cuda.current_stream()
            self.side.wait_stream(main)
            with torch.cuda.stream(self.side):
                out = self._forward()
            main.wait_stream(self.side)
            out.record_stream(main)                  # read on the main stream, allocated on the side
            self.warm += 1
            return out
        out = self._capture()
        return out if out is not None else self._forward()

    def _capture(self):
        """Capture the step, replay it, redo it eagerly and compare: -> the eager logits, or None
        when capture failed (nothing ran, so the state is untouched)."""
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=self.side):
                logits = self._forward()
        except Exception as e:                                      # noqa: BLE001 - any failure: eager
            return self._give_up(f"{type(e).__name__}: {str(e).strip()[:200]}")
        graph.replay()
        replayed = logits.clone()
        self._rewind()
        eager = self._forward()                                     # the same step, eagerly, last
        if torch.allclose(replayed.float(), eager.float(), rtol=1e-2, atol=1e-2):
            self.graph, self.logits = graph, logits
        else:
            self._give_up("its first replay disagrees with an eager step")
        return eager

    def _give_up(self, why: str):
        warnings.warn("sampler: CUDA graph off, decoding eagerly (" + " ".join(why.split()) + ")")
        self.cuda_graph = False


@torch.no_grad()
def _generate_ours(model, ids, am, max_new_tokens, stop, pad, temperature, top_p, greedy, generator,
                   cuda_graph):
    """One left-padded batch ids, am (B, P) -> responses (B, max_new_tokens), pad after the stop,
    and their log-probs (B, max_new_tokens) fp32, 0 after the stop."""
    from transformers.cache_utils import Cache, StaticLayer
    B, P = ids.shape
    L = P + max_new_tokens
    n_layers = model.config.get_text_config(decoder=True).num_hidden_layers
    cache = Cache(layers=[StaticLayer(max_cache_len=L) for _ in range(n_layers)])
    valid = torch.zeros(B, L, dtype=torch.bool, device=ids.device)
    valid[:, :P] = am.bool()
    decoder = StaticDecoder(model, cache, valid, P, cuda_graph)
    pos = (am.cumsum(1) - 1).clamp(min=0)                           # (B, P), skips the left padding
    logits = model(input_ids=ids, attention_mask=am, position_ids=pos, cache=cache, use_cache=True,
                   logits_to_keep=1).logits[:, -1]                  # (B, V) prefill
    resp = torch.full((B, max_new_tokens), pad, dtype=torch.long, device=ids.device)
    logp = torch.zeros(B, max_new_tokens, dtype=torch.float32, device=ids.device)
    stop = torch.as_tensor(stop, dtype=torch.long, device=ids.device)
    done = torch.zeros(B, dtype=torch.bool, device=ids.device)
    nxt = pos[:, -1] + 1                                            # (B,) position of the next token
    with _fsdp_hooks_off(model):
        for t in range(max_new_tokens):
            tok, lp = sample(logits, temperature, top_p, greedy, generator)
            resp[:, t] = tok.masked_fill_(done, pad)
            logp[:, t] = lp.masked_fill_(done, 0.0)
            done |= torch.isin(tok, stop)
            if t == max_new_tokens - 1 or bool(done.all()):
                break
            logits = decoder.step(tok, nxt)
            nxt += 1
    return resp, logp


# ----------------------------------------------------------------------------- the reference

@torch.no_grad()
def _generate_hf(model, ids, am, max_new_tokens, stop, pad, temperature, top_p, greedy):
    """transformers' generate() (dynamic cache) on one batch -> (B, max_new_tokens), pad after the stop."""
    kw = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
    out = model.generate(input_ids=ids, attention_mask=am, repetition_penalty=1.0,
                         max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=stop, **kw)
    P = ids.shape[1]
    return F.pad(out[:, P:], (0, max_new_tokens - (out.shape[1] - P)), value=pad)


# ----------------------------------------------------------------------------- entry point

def _check_gathered(model):
    """Decision 1: a sharded FSDP2 model holds DTensor parameters until `grpo.unsharded` gathers them."""
    if not torch.distributed.is_available():
        return
    from torch.distributed.tensor import DTensor
    if any(isinstance(p, DTensor) for p in model.parameters()):
        raise RuntimeError("generate_rollouts: the model's FSDP2 parameters are sharded; call it inside "
                           "`with grpo.unsharded(model):` so that decoding issues no collective")


def generate_rollouts(model, tok, prompts: list[str], max_new_tokens: int, temperature: float = 1.0,
                      top_p: float = 1.0, batch_size: int = 64, sampler: str = "ours", *,
                      greedy: bool = False, return_logprobs: bool = False, stop_ids: list[int] | None = None,
                      generator: torch.Generator | None = None, cuda_graph: bool = True) -> tuple:
    """Sample one response per prompt (decisions 1-3).

    -> ids (N, P + R): left-padded prompt then response (pad after the stop), attention mask
    (N, P + R) with 0 on padding, and P, the padded prompt length; with return_logprobs (ours
    only) also the sampled tokens' log-probs (N, R) fp32, 0 on padding.
    greedy: argmax decoding (generate(do_sample=False) for "hf"). stop_ids: the ids that end a
    response, default stop_token_ids(model, tok); [] never stops (fixed-length benchmarks).
    generator: a torch.Generator on the model's device, for reproducible sampling ("ours"; "hf"
    uses the global RNG). cuda_graph: capture the decode step on CUDA ("ours"; decisions 5-6).
    """
    if not prompts:
        raise ValueError("generate_rollouts: no prompts")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError(f"max_new_tokens and batch_size must be >= 1, got {max_new_tokens}, {batch_size}")
    if not greedy and (temperature <= 0 or not 0 < top_p <= 1):
        raise ValueError(f"temperature must be > 0 and top_p in (0, 1], got {temperature}, {top_p}")
    if tok.pad_token_id is None or tok.padding_side != "left":
        raise ValueError("the tokenizer must pad on the left with a pad token (e.g. tok.pad_token = "
                         f"tok.eos_token; tok.padding_side = 'left'), got pad {tok.pad_token!r}, "
                         f"side {tok.padding_side!r}")
    if return_logprobs and sampler != "ours":
        raise ValueError("return_logprobs needs sampler='ours'")
    _check_gathered(model)
    device = model.get_input_embeddings().weight.device
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    stop = stop_token_ids(model, tok) if stop_ids is None else list(stop_ids)
    P, pad = enc["input_ids"].shape[1], tok.pad_token_id
    outs, logps = [], []
    for s in range(0, len(prompts), batch_size):
        ids, am = enc["input_ids"][s:s + batch_size], enc["attention_mask"][s:s + batch_size]
        if sampler == "hf":
            outs.append(_generate_hf(model, ids, am, max_new_tokens, stop, pad, temperature, top_p, greedy))
            continue
        resp, lp = _generate_ours(model, ids, am, max_new_tokens, stop, pad, temperature, top_p, greedy,
                                  generator, cuda_graph)
        outs.append(resp)
        logps.append(lp)
    resp = torch.cat(outs)                                          # (N, max_new_tokens)
    rmask = response_mask(resp, stop)
    R = int(rmask.sum(1).max())
    resp, rmask = resp[:, :R].masked_fill(rmask[:, :R] == 0, pad), rmask[:, :R]
    ids = torch.cat([enc["input_ids"], resp], 1)
    am = torch.cat([enc["attention_mask"], rmask], 1)
    if return_logprobs:
        return ids, am, P, torch.cat(logps)[:, :R] * rmask
    return ids, am, P
