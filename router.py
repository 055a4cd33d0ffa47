"""
The LRPO language router: a contextual bandit that picks the language of every rollout
(paper §3.1 and §3.3, Algorithms 1 and 2, Eqs. 1, 6, 7).

    from router import LanguageRouter, TOPICS, REGIONS
    router = LanguageRouter(LANGUAGES, TOPICS, REGIONS)     # mode="learned" is LRPO
    langs = router.route(topic, regions, lang, K)           # per prompt: K language codes
    router.record(topic, regions, langs, rewards)           # per group: its K rewards
    if router.step():                                       # once per training step, on every rank
        log.write(json.dumps(router.snapshot()) + "\n")     # one line per router update
    print(router.table())

The file depends on torch only; the caller passes the languages (15 ISO codes in LRPO).

Decisions:
1. Logits z = A[t] + sum over the item's regions of B[r] (Eq. 1), the B term only for topic
   "Regional Knowledge". A region list is a set: a repeated name counts once. A region never seen
   gets a zero row of B; it is added at the next step() (decision 5), until then it adds 0.
2. Buckets of the update (Eq. 6). update="per_region" (default; Eq. 6 as written, as the authors'
   release does it): one bucket per (topic t, region g, language l); an item counts in the bucket
   of each of its regions, an item with no region in its topic's no-region bucket. Bucket means
   are z-scored across the languages seen in each (t, g) group, (mean - mu) / (std + 1e-6) with
   the population std, as the release; a group with one language seen gets 0. Eq. 7 gives A[t, l]
   one EMA step per (t, g) bucket holding l and B[g, l] (Regional Knowledge only) one step from
   its (Regional Knowledge, g) bucket. The release takes A's n steps one by one in dict order, so
   its A depends on the order in which buckets first arrive; here A takes the order-free
   equivalent, n steps towards the mean of the n targets, (1-alpha)^n A + (1-(1-alpha)^n) mean:
   the same total weight on new data, equal to the release when the targets agree. A topic over
   ~20 regions keeps (1-alpha)^20 ~ 0.12 of its old A[t] per update. update="pooled" (ablation,
   this file's earlier rule): one (t, l) bucket over all of a topic's regions, one step per update;
   B as above. `python tests/test_router.py` measures both on a synthetic buffer (half Regional
   Knowledge over 24 regions): max |A[Regional Knowledge]| after one update 0.19 pooled, 0.51
   per region (release: 0.41-0.79 over 10 arrival orders, one entry moving by up to 0.52).
3. A language with no rollout in a bucket since the last update keeps its logit.
4. Every recorded rollout counts: the K_on own-language ones and Translation items too (the
   buffer of §3.3 records every rollout by topic, region and language; Algorithm 2, line 10).
5. Distributed: every step() sums the new records of all ranks (one all_reduce of fixed-shape
   sums and counts over topics x (1 + regions) x languages, after the ranks agree on new region
   names with all_gather_object, appended in sorted order). Every rank then holds the identical
   router and buffer, so a checkpoint from rank 0 is complete. One process takes the same path
   without the collectives and ends with the same A and B (tests/dist_router.py checks it). Every
   rank must call step() at every training step. With NCCL the buffer travels through the
   current CUDA device.
6. Randomness: each route() call draws from its own torch.Generator seeded from (seed, rank, step,
   call number within the step): runs are reproducible, ranks draw differently, and a restored
   state_dict routes exactly as the original would have.
7. Fixed modes use exact counts per group, q = K // 4 being the 25% share and the own language
   keeping at least one rollout (K=8: input 6 lang + 2 en, english 2 lang + 6 en, uniform 2 lang +
   6 drawn uniformly over all languages). They never update: record() only validates, step()
   only advances the schedules. Translation items are never routed in any mode.
8. Schedules per training step s (§3.3, annealing of tau and eps): tau = max(tau_min, tau0 *
   d_tau^s), likewise eps; anneal=False keeps tau0 and eps0.
9. priors = {topic or region: {lang: weight}} sets that row to log(max(weight, 1e-6)), log(1e-6)
   for languages it omits (the release's hand mixes), for the "without uniform init" ablation.
10. A, B and the buffer are float64: the all-reduced sums stay exact for rewards on a dyadic
    grid, and tiny EMA steps are not lost late in training.
"""
import hashlib
import json
import math

import torch
import torch.distributed as dist

TOPICS = ("Regional Knowledge", "General Knowledge", "Reasoning", "Chat", "Safety", "Translation")
REGIONS = ("Russia", "Southeast Asia", "Latin America", "Japan", "South Asia", "North Korea",
           "Anglosphere", "Europe", "Africa", "China", "Israel", "France", "Turkey", "Germany",
           "South Korea", "Iran", "Spain", "Poland", "Vietnam", "Polynesia", "India", "Central Asia",
           "Arab World", "Italy")
REGIONAL = "Regional Knowledge"  # the only topic whose logits include B
UNROUTED = "Translation"         # never routed: all K rollouts in the item's own language
MODES = ("learned", "monolingual", "input", "english", "uniform")
UPDATES = ("per_region", "pooled")  # decision 2
MIN_WEIGHT = 1e-6                # prior weight floor and weight of languages a prior omits
_STATE_TENSORS = ("A", "B", "_buf", "_region_seen")


def schedule(v0: float, v_min: float, decay: float, step: int) -> float:
    """max(v_min, v0 * decay^step): the tau and eps annealing (§3.3, decision 8)."""
    return max(v_min, v0 * decay ** step)


def bucket_targets(sums: torch.Tensor, counts: torch.Tensor, norm: str):
    """EMA targets r_bar per bucket (Eq. 6) and the mask of buckets seen. sums, counts:
    (..., n_langs), one group per row; returns (..., n_langs) targets and (..., n_langs) bool."""
    seen = counts > 0
    mean = sums / counts.clamp(min=1)
    if norm == "zscore":  # standardise across the languages seen in each group
        n = seen.sum(-1, keepdim=True).clamp(min=1)
        mu = (mean * seen).sum(-1, keepdim=True) / n
        std = ((mean - mu) ** 2 * seen).sum(-1, keepdim=True).div(n).sqrt()
        mean = (mean - mu) / (std + 1e-6)
    return mean, seen


def ema_steps(M: torch.Tensor, target: torch.Tensor, n: torch.Tensor, alpha: float) -> torch.Tensor:
    """n EMA steps of Eq. 7 towards `target`, in closed form: (1-alpha)^n M + (1-(1-alpha)^n) target;
    n = 1 is the textbook step bit for bit, n = 0 keeps M (decision 3). All (R, n_langs)."""
    keep = (1 - alpha) ** n
    w = torch.where(n == 1, alpha, 1 - keep)
    return torch.where(n > 0, keep * M + w * target, M)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _seed_of(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers, stable across runs and machines."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def load_priors(path: str) -> dict:
    """Hand priors (Decision 9) from a JSON file {topic or region: {lang: weight}}."""
    with open(path, encoding="utf-8") as f:
        priors = json.load(f)
    if not isinstance(priors, dict):
        raise ValueError(f"expected a JSON object {{topic or region: {{lang: weight}}}}, got {type(priors).__name__}")
    return priors


class LanguageRouter:
    """Topic x language matrix A and region x language matrix B, routed and updated as in LRPO."""

    def __init__(self, languages, topics, regions=(), *, mode: str = "learned", K_on: int = 2,
                 tau=(1.0, 0.3, 0.999), eps=(0.2, 0.0, 0.995), anneal: bool = True,
                 alpha: float = 0.1, update_every: int = 5, bucket_norm: str = "zscore",
                 update: str = "per_region", priors: dict | None = None, seed: int = 0):
        self.languages, self.topics = list(languages), list(topics)
        (tau0, tau_min, d_tau), (eps0, eps_min, d_eps) = tau, eps
        distinct = [x and len(set(x)) == len(x) and all(isinstance(v, str) for v in x)
                    for x in (self.languages, self.topics)]
        for ok, msg in [
            (all(distinct), f"languages and topics must be non-empty lists of distinct strings, "
                            f"got {languages}, {topics}"),
            (mode in MODES, f"mode {mode!r} is not one of {MODES}"),
            (mode not in ("input", "english") or "en" in self.languages,
             f"mode {mode!r} routes to 'en', which is not in languages {self.languages}"),
            (bucket_norm in ("zscore", "none"), f"bucket_norm {bucket_norm!r} is not 'zscore' or 'none'"),
            (update in UPDATES, f"update {update!r} is not one of {UPDATES}"),
            (isinstance(K_on, int) and K_on >= 0, f"K_on must be an int >= 0, got {K_on!r}"),
            (isinstance(update_every, int) and update_every >= 1, f"update_every must be an int >= 1, got {update_every!r}"),
            (0 < alpha <= 1, f"alpha must be in (0, 1], got {alpha}"),
            (min(tau) > 0, f"tau = (tau0, tau_min, d_tau) must all be > 0, got {tau}"),
            (0 <= eps0 <= 1 and 0 <= eps_min <= 1 and d_eps > 0,
             f"eps = (eps0, eps_min, d_eps) needs eps0, eps_min in [0, 1] and d_eps > 0, got {eps}")]:
            if not ok:
                raise ValueError(msg)
        self.mode, self.K_on, self.alpha, self.update_every = mode, K_on, alpha, update_every
        self.tau0, self.tau_min, self.d_tau = map(float, tau)
        self.eps0, self.eps_min, self.d_eps = map(float, eps)
        self.anneal, self.bucket_norm, self.update, self.seed = anneal, bucket_norm, update, int(seed)
        self._li = {l: i for i, l in enumerate(self.languages)}
        self._ti = {t: i for i, t in enumerate(self.topics)}
        n_topics, n_langs = len(self.topics), len(self.languages)
        f64 = dict(dtype=torch.float64)
        self.A = torch.zeros(n_topics, n_langs, **f64)                   # (n_topics, n_langs)
        self.B = torch.zeros(0, n_langs, **f64)                          # (n_regions, n_langs)
        # reward sums and counts per (topic, column, language); column 0 is the no-region bucket
        # (per_region) or the topic's pooled bucket (pooled), column 1 + g region g (decision 2)
        self._buf = torch.zeros(2, n_topics, 1, n_langs, **f64)  # (2, n_topics, 1 + n_regions, n_langs)
        self._region_seen = torch.zeros(0, dtype=torch.bool)             # (n_regions,) B has data or a prior
        self._local: dict[tuple, torch.Tensor] = {}                      # this rank's buckets, (2, n_langs)
        self._new_regions: set[str] = set()                              # met, not yet agreed
        self.regions: list[str] = []
        self._gi: dict[str, int] = {}
        self.t, self._calls = 0, 0                                       # training step, routes in it
        for g in self._check_regions(regions):
            self._add_region(g)
        if priors:
            self._set_priors(priors)

    # ---- schedules and logits ----
    @property
    def tau(self) -> float:
        return schedule(self.tau0, self.tau_min, self.d_tau, self.t) if self.anneal else self.tau0

    @property
    def eps(self) -> float:
        return schedule(self.eps0, self.eps_min, self.d_eps, self.t) if self.anneal else self.eps0

    def probs(self, topic: str, regions=()) -> torch.Tensor:
        """(n_langs,) float64: softmax(z / tau) at the current step, before eps (Eq. 1)."""
        t, regs = self._check_topic(topic), self._check_regions(regions)
        z = self.A[t].clone()                                            # (n_langs,)
        if topic == REGIONAL:
            for g in regs:
                if g in self._gi:  # a region not yet added contributes its zero row
                    z += self.B[self._gi[g]]
        return torch.softmax(z / self.tau, dim=0)

    # ---- routing (Algorithm 1) ----
    def route(self, topic: str, regions, lang: str, K: int) -> list[str]:
        """K language codes for one prompt; the first K_on (learned mode) are `lang`."""
        self._check_topic(topic)
        self._check_langs([lang])
        if not isinstance(K, int) or K < 1:
            raise ValueError(f"K must be an int >= 1, got {K!r}")
        self._register(topic, regions)
        if topic == UNROUTED or self.mode == "monolingual":
            return [lang] * K
        n_langs, q = len(self.languages), K // 4  # q: the 25% share of a fixed mode
        if self.mode == "input":
            return [lang] * (K - q) + ["en"] * q
        q = max(1, q)                             # the own language keeps at least one rollout
        if self.mode == "english":
            return [lang] * q + ["en"] * (K - q)
        if self.mode == "learned" and K < self.K_on:
            raise ValueError(f"K={K} is smaller than the on-policy quota K_on={self.K_on}")
        rank = dist.get_rank() if _distributed() else 0
        gen = torch.Generator().manual_seed(_seed_of(self.seed, rank, self.t, self._calls))
        self._calls += 1
        if self.mode == "uniform":
            return [lang] * q + [self.languages[i] for i in torch.randint(n_langs, (K - q,), generator=gen).tolist()]
        n = K - self.K_on
        if n == 0:
            return [lang] * K
        p = self.probs(topic, regions)                                   # (n_langs,)
        explore = torch.rand(n, generator=gen) < self.eps                # eps-greedy per free slot
        uniform = torch.randint(n_langs, (n,), generator=gen)
        routed = torch.multinomial(p, n, replacement=True, generator=gen)
        idx = torch.where(explore, uniform, routed)
        return [lang] * self.K_on + [self.languages[i] for i in idx.tolist()]

    # ---- buffer and update (Eqs. 6, 7) ----
    def record(self, topic: str, regions, langs, rewards) -> None:
        """Buffer one group: langs (K codes, as route() returned them), rewards (K,) floats."""
        self._check_topic(topic)
        self._check_langs(langs)
        r = torch.as_tensor(rewards, dtype=torch.float64, device="cpu").detach()  # (K,), never via fp32
        if r.dim() != 1 or len(r) != len(langs) or len(r) == 0:
            raise ValueError(f"rewards must be a list or 1-D tensor of {len(langs)} floats (one per "
                             f"language), got shape {tuple(r.shape)}")
        if not torch.isfinite(r).all():
            raise ValueError(f"rewards must be finite, got {r.tolist()}")
        regs = self._register(topic, regions)
        if self.mode != "learned":
            return
        idx = torch.tensor([self._li[l] for l in langs])
        if self.update == "per_region":  # one bucket per region, or the no-region one (decision 2)
            buckets = [(topic, g) for g in regs] or [(topic, None)]
        else:                            # the pooled A bucket, and the B buckets of its regions
            buckets = [(topic, None)] + [(topic, g) for g in regs if topic == REGIONAL]
        for key in buckets:
            buf = self._local.setdefault(key, torch.zeros(2, len(self.languages), dtype=torch.float64))
            buf[0].index_add_(0, idx, r)
            buf[1].index_add_(0, idx, torch.ones_like(r))

    def step(self) -> bool:
        """Close one training step: reduce the records (a collective: every rank calls it),
        advance tau/eps; every `update_every` steps apply the EMA update (Eq. 7) and clear the
        buffer. True when it updated."""
        if self.mode == "learned":
            self._reduce()
        self.t, self._calls = self.t + 1, 0
        if self.mode != "learned" or self.t % self.update_every:
            return False
        # targets and mask per (topic, column, language): (n_topics, 1 + n_regions, n_langs)
        r_bar, seen = bucket_targets(self._buf[0], self._buf[1], self.bucket_norm)
        if self.update == "per_region":  # n steps towards the mean of the n targets (decision 2)
            n = seen.sum(1).double()                                     # (n_topics, n_langs)
            target = (r_bar * seen).sum(1) / n.clamp(min=1)
        else:
            n, target = seen[:, 0].double(), r_bar[:, 0]
        self.A.copy_(ema_steps(self.A, target, n, self.alpha))
        if REGIONAL in self._ti:
            t = self._ti[REGIONAL]
            self.B.copy_(ema_steps(self.B, r_bar[t, 1:], seen[t, 1:].double(), self.alpha))
        self._buf.zero_()
        return True

    def _reduce(self) -> None:
        """Move this rank's new records into the shared buffer, summed over all ranks."""
        new = sorted(self._new_regions - set(self._gi))
        if _distributed():
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, new)
            new = sorted(set().union(*gathered))
        for g in new:
            self._add_region(g)
        self._new_regions.clear()
        local = torch.zeros_like(self._buf)                              # (2, n_topics, 1 + n_regions, n_langs)
        for (topic, g), buf in self._local.items():
            local[:, self._ti[topic], 0 if g is None else 1 + self._gi[g]] = buf
        if _distributed():
            on_gpu = dist.get_backend() == "nccl"
            device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else local.device
            local = local.to(device)
            dist.all_reduce(local)
            local = local.cpu()
        self._buf += local
        if REGIONAL in self._ti:
            self._region_seen |= local[1, self._ti[REGIONAL], 1:].sum(-1) > 0
        self._local.clear()

    # ---- checkpoints and logs ----
    def state_dict(self) -> dict:
        """Everything needed to resume exactly; take it after step() (records are then reduced)."""
        if self._local or self._new_regions:
            raise RuntimeError("state_dict() needs the records of this step reduced: call step() first")
        return {"languages": list(self.languages), "topics": list(self.topics), "update": self.update,
                "regions": list(self.regions), "step": self.t, "calls": self._calls,
                **{k.strip("_"): getattr(self, k).clone() for k in _STATE_TENSORS}}

    def load_state_dict(self, sd: dict) -> None:
        if "buf" not in sd:
            raise ValueError("state_dict is from an older router (buf_A, buf_B, no 'buf'); it cannot resume")
        for key in ("languages", "topics", "update"):
            if sd[key] != getattr(self, key):
                raise ValueError(f"state_dict {key} {sd[key]!r} differ from this router's {getattr(self, key)!r}")
        self.regions = list(sd["regions"])
        self._gi = {g: i for i, g in enumerate(self.regions)}
        self.t, self._calls = int(sd["step"]), int(sd["calls"])
        for k in _STATE_TENSORS:
            setattr(self, k, sd[k.strip("_")].clone())
        self._local.clear()
        self._new_regions.clear()

    def snapshot(self) -> dict:
        """One JSON-serialisable object: step, tau, eps and the probabilities per topic and per
        region seen (softmax((A["Regional Knowledge"] + B[g]) / tau)); one router.jsonl line."""
        def as_dict(p):
            return {l: round(float(x), 6) for l, x in zip(self.languages, p)}
        seen = [g for g, s in zip(self.regions, self._region_seen.tolist()) if s]
        regions = {g: as_dict(self.probs(REGIONAL, [g])) for g in seen} if REGIONAL in self._ti else {}
        return {"step": self.t, "tau": self.tau, "eps": self.eps,
                "topics": {t: as_dict(self.probs(t)) for t in self.topics}, "regions": regions}

    def table(self) -> str:
        """Topic x language (and region x language) probabilities in %, for a terminal."""
        snap = self.snapshot()
        lines = [f"router step {snap['step']}  tau {snap['tau']:.3f}  eps {snap['eps']:.3f}  "
                 f"mode {self.mode}  (softmax(z / tau) in %, before eps)",
                 f"{'':<22}" + "".join(f"{l:>6}" for l in self.languages)]
        for kind, rows in (("", snap["topics"]), ("region ", snap["regions"])):
            for name, p in rows.items():
                lines.append(f"{(kind + name)[:22]:<22}" + "".join(f"{100 * p[l]:6.1f}" for l in self.languages))
        return "\n".join(lines)

    # ---- validation helpers ----
    def _check_topic(self, topic) -> int:
        if topic not in self._ti:
            raise ValueError(f"unknown topic {topic!r}; valid topics: {self.topics}")
        return self._ti[topic]

    def _check_langs(self, langs) -> None:
        for l in langs:
            if l not in self._li:
                raise ValueError(f"unknown language {l!r}; valid languages: {self.languages}")

    @staticmethod
    def _check_regions(regions) -> list[str]:
        if regions is None:
            return []
        if isinstance(regions, str) or not all(isinstance(g, str) and g.strip() for g in regions):
            raise ValueError(f"regions must be a list of non-empty strings (e.g. ['China']), got {regions!r}")
        return list(dict.fromkeys(regions))

    def _register(self, topic: str, regions) -> list[str]:
        """Validated regions of an item; new ones that get a bucket await step() (decision 2)."""
        regs = self._check_regions(regions)
        if self.mode == "learned" and (topic == REGIONAL or self.update == "per_region"):
            self._new_regions.update(g for g in regs if g not in self._gi)
        return regs

    def _add_region(self, g: str) -> None:
        self._gi[g] = len(self.regions)
        self.regions.append(g)
        self.B = torch.cat([self.B, torch.zeros(1, len(self.languages), dtype=torch.float64)])
        self._buf = torch.cat([self._buf, torch.zeros_like(self._buf[:, :, :1])], dim=2)
        self._region_seen = torch.cat([self._region_seen, torch.zeros(1, dtype=torch.bool)])

    def _set_priors(self, priors: dict) -> None:
        for key, weights in priors.items():
            if key not in self._ti and key not in self._gi:
                raise ValueError(f"prior key {key!r} is neither a topic {self.topics} nor a region "
                                 f"given to the router {self.regions}")
            self._check_langs(weights)
            if not all(isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in weights.values()):
                raise ValueError(f"prior weights of {key!r} must be finite and >= 0, got {weights}")
            row = torch.full((len(self.languages),), math.log(MIN_WEIGHT), dtype=torch.float64)
            for l, w in weights.items():
                row[self._li[l]] = math.log(max(w, MIN_WEIGHT))
            if key in self._ti:
                self.A[self._ti[key]] = row
            else:
                self.B[self._gi[key]] = row
                self._region_seen[self._gi[key]] = True
