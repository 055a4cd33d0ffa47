"""
Tests of router.py (paper §3.1, §3.3, Algorithms 1 and 2, Eqs. 1, 6, 7; the fixed routings of
Table 2 and the router ablations of Table 4).

    python -m pytest -q tests/test_router.py
    python tests/test_router.py        # prints the simulated-bandit comparison, a router table and
                                       # the per-region vs pooled update on a synthetic buffer

Decisions:
1. The simulated bandit: 6 topics, each with its own best language among 15 (Bernoulli reward
   p = 0.75) and the other 14 drawn in [0.3, 0.6]; 32 prompts per step, K = 8, release defaults.
   The learned router must find every best language and beat `uniform` and `monolingual` on the
   same reward stream; "updates to convergence" is the first router update after which every
   topic's most probable language is its best one for the rest of the run.
2. The EMA update is compared with a slow, obvious reference written with dicts, statistics.fmean
   and statistics.pstdev on Python floats (per_region: a loop of n single EMA steps towards the
   mean of A[t, l]'s n bucket targets, router.py decision 2), and with hand-computed numbers.
   The same reference, with the n steps taken one by one in dict order as the authors' release
   does, measures how much that order matters (printed by `python tests/test_router.py`).
3. The distributed check runs tests/dist_router.py under torchrun with 2 ranks (one launch for
   both update rules) and compares both ranks with one process in this test that records every
   group, bit for bit.
"""
import io
import json
import math
import os
import statistics
import sys
from collections import defaultdict

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]  # the repo root (router.py) and tests/ (dist_router.py)
import dist_router  # noqa: E402
from router import REGIONAL, REGIONS, TOPICS, LanguageRouter  # noqa: E402

LANGS = "ar de en es fr id it ja ko nl pl pt ru vi zh".split()
SIM_TOPICS = [f"topic{i}" for i in range(6)]


# ---- the simulated bandit (decision 1) ----
def make_bandit(seed: int = 0):
    """(6, 15) success probabilities and the (6,) index of each topic's best language."""
    g = torch.Generator().manual_seed(seed)
    p = 0.3 + 0.3 * torch.rand(6, len(LANGS), generator=g, dtype=torch.float64)
    best = torch.randperm(len(LANGS), generator=g)[:6]
    p[torch.arange(6), best] = 0.75
    return p, best


def simulate(mode: str, steps: int = 150, prompts: int = 32, K: int = 8, seed: int = 0):
    """Run one router on the bandit; return (router, mean reward of all rollouts, mean reward of
    the last 50 steps, updates to convergence or None, number of updates)."""
    p, best = make_bandit(seed)
    router = LanguageRouter(LANGS, SIM_TOPICS, mode=mode, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    per_step, correct = [], []
    for _ in range(steps):
        total = 0.0
        for _ in range(prompts):
            t = int(torch.randint(6, (1,), generator=g))
            lang = LANGS[int(torch.randint(len(LANGS), (1,), generator=g))]
            langs = router.route(SIM_TOPICS[t], [], lang, K)
            rewards = torch.bernoulli(p[t, [LANGS.index(l) for l in langs]], generator=g)
            router.record(SIM_TOPICS[t], [], langs, rewards)
            total += float(rewards.sum()) / (prompts * K)
        per_step.append(total)
        if router.step():
            correct.append(all(int(router.probs(SIM_TOPICS[i]).argmax()) == int(best[i]) for i in range(6)))
    wrong = [i for i, ok in enumerate(correct) if not ok]
    converged = (wrong[-1] + 2 if wrong else 1) if correct and correct[-1] else None
    return router, statistics.fmean(per_step), statistics.fmean(per_step[-50:]), converged, len(correct)


def test_bandit_learns_best_language_and_beats_fixed_routing():
    router, learned, learned_late, converged, updates = simulate("learned")
    _, best = make_bandit()
    for i, topic in enumerate(SIM_TOPICS):
        assert int(router.probs(topic).argmax()) == int(best[i]), (topic, router.table())
    assert converged is not None and converged <= updates
    _, uniform, uniform_late, _, _ = simulate("uniform")
    _, mono, mono_late, _, _ = simulate("monolingual")
    # one run's mean reward has a std of about 0.003 (38,400 Bernoulli rollouts)
    assert learned > max(uniform, mono) + 0.025, (learned, uniform, mono)
    assert learned_late > max(uniform_late, mono_late) + 0.04, (learned_late, uniform_late, mono_late)


# ---- regions ----
def test_region_prefers_its_best_language_and_other_topics_ignore_B():
    best = {"Japan": "ja", "France": "fr", "Atlantis": "pt"}   # Atlantis: not in REGIONS
    router = LanguageRouter(LANGS, TOPICS, REGIONS, update_every=2, seed=3)
    g = torch.Generator().manual_seed(0)
    for _ in range(120):
        for region, good in best.items():
            langs = router.route(REGIONAL, [region], "en", 8)
            rewards = [0.9 if l == good else 0.3 for l in langs]
            router.record(REGIONAL, [region], langs, torch.tensor(rewards) + 0.05 * torch.randn(8, generator=g))
        chat_langs = router.route("Chat", ["Italy"], "de", 8)
        router.record("Chat", ["Italy"], chat_langs, [1.0 if l == "ko" else 0.0 for l in chat_langs])
        router.step()
    for region, good in best.items():
        assert LANGS[int(router.probs(REGIONAL, [region]).argmax())] == good, router.table()
    assert "Atlantis" in router.regions and "Atlantis" not in REGIONS
    # Chat learned ko through A; its regions add nothing and its records never touch B.
    assert LANGS[int(router.probs("Chat").argmax())] == "ko"
    assert torch.equal(router.probs("Chat", ["Japan"]), router.probs("Chat", []))
    assert not router.B[router.regions.index("Italy")].any()
    assert set(router.snapshot()["regions"]) == set(best)
    # several regions add their rows; a repeated region counts once (Eq. 1)
    gj, gf = router.regions.index("Japan"), router.regions.index("France")
    z = router.A[TOPICS.index(REGIONAL)] + router.B[gj] + router.B[gf]
    want = torch.softmax(z / router.tau, dim=0)
    assert torch.allclose(router.probs(REGIONAL, ["Japan", "France"]), want, rtol=0, atol=1e-15)
    assert torch.equal(router.probs(REGIONAL, ["Japan", "Japan"]), router.probs(REGIONAL, ["Japan"]))


# ---- routing quotas, fixed modes, Translation, eps ----
@pytest.mark.parametrize("K", [8, 5, 4, 2])
def test_exact_quotas_and_fixed_mode_counts(K):
    q = K // 4
    want = {"monolingual": {"de": K}, "input": {"de": K - q, "en": q},
            "english": {"de": max(1, q), "en": K - max(1, q)}}
    for mode, counts in want.items():
        router = LanguageRouter(LANGS, TOPICS, mode=mode)
        for _ in range(20):
            langs = router.route("Reasoning", [], "de", K)
            assert {l: langs.count(l) for l in set(langs)} == {l: c for l, c in counts.items() if c}
            router.record("Reasoning", [], langs, [1.0] * K)
            assert router.step() is False
        assert not router.A.any()  # fixed modes never update
    uniform = LanguageRouter(LANGS, TOPICS, mode="uniform")
    learned = LanguageRouter(LANGS, TOPICS, K_on=2, priors={"Reasoning": {"ja": 1.0}}, eps=(0, 0, 1))
    seen = set()
    for _ in range(60):
        langs = uniform.route("Reasoning", [], "de", K)
        assert len(langs) == K and langs[:max(1, q)] == ["de"] * max(1, q)
        seen.update(langs[max(1, q):])
        routed = learned.route("Reasoning", [], "de", K)
        assert routed == ["de"] * min(2, K) + ["ja"] * (K - 2)  # K_on own, the rest from p
    assert K <= 2 or len(seen) > 5  # uniform mode draws over many languages


def test_translation_is_never_routed():
    for mode in ("learned", "monolingual", "input", "english", "uniform"):
        router = LanguageRouter(LANGS, TOPICS, mode=mode, eps=(1.0, 1.0, 1.0))
        for _ in range(20):
            assert router.route("Translation", [], "vi", 8) == ["vi"] * 8


def test_eps_floor_draws_every_language():
    # p puts all its mass on ja (log(1e-6) elsewhere, tau 0.3): other languages come from eps only.
    peaked = {"Chat": {"ja": 1.0}}
    router = LanguageRouter(LANGS, TOPICS, priors=peaked, tau=(0.3, 0.3, 1), eps=(0.2, 0.2, 1))
    drawn, others, slots = set(), 0, 0
    for n in range(300):
        langs = router.route("Chat", [], "ar", 8)[2:]
        drawn.update(langs)
        others += sum(l != "ja" for l in langs)
        slots += len(langs)
        if n == 149:
            assert drawn == set(LANGS), f"not every language drawn in 150 routes: {set(LANGS) - drawn}"
    # a free slot is a non-ja language with probability eps * 14/15
    assert abs(others / slots - 0.2 * 14 / 15) < 0.04, others / slots
    greedy = LanguageRouter(LANGS, TOPICS, priors=peaked, tau=(0.3, 0.3, 1), eps=(0.0, 0.0, 1))
    assert all(greedy.route("Chat", [], "ar", 8)[2:] == ["ja"] * 6 for _ in range(300))


def test_schedules():
    router = LanguageRouter(LANGS, TOPICS, tau=(1.0, 0.3, 0.5), eps=(0.2, 0.05, 0.5))
    want = [(1.0, 0.2), (0.5, 0.1), (0.3, 0.05), (0.3, 0.05)]  # max(min, v0 * d^s) by hand
    for tau, eps in want:
        assert math.isclose(router.tau, tau) and math.isclose(router.eps, eps)
        router.step()
    d = LanguageRouter(LANGS, TOPICS)  # release defaults at step 100
    for _ in range(100):
        d.step()
    assert math.isclose(d.tau, 0.999 ** 100) and math.isclose(d.eps, 0.2 * 0.995 ** 100)
    flat = LanguageRouter(LANGS, TOPICS, tau=(1.0, 0.3, 0.5), eps=(0.2, 0.05, 0.5), anneal=False)
    for _ in range(5):
        flat.step()
    assert (flat.tau, flat.eps) == (1.0, 0.2)


# ---- the update (Eqs. 6, 7) ----
@pytest.mark.parametrize("update", ["per_region", "pooled"])
def test_update_by_hand(update):
    """Topic Chat, no region (both rules agree), one update: en rewards [1, 0], fr [1], de [0, 0, 0]."""
    recs = [(["en", "en", "fr"], [1.0, 0.0, 1.0]), (["de", "de", "de"], [0.0, 0.0, 0.0])]
    for norm in ("zscore", "none"):
        router = LanguageRouter(LANGS, TOPICS, update_every=1, bucket_norm=norm, update=update)
        for langs, rewards in recs:
            router.record("Chat", [], langs, rewards)
        assert router.step() is True
        row = dict(zip(LANGS, router.A[TOPICS.index("Chat")].tolist()))
        std = math.sqrt(((0.5 - 0.5) ** 2 + (1 - 0.5) ** 2 + (0 - 0.5) ** 2) / 3)
        want = ({"en": 0.0, "fr": 0.1 * 0.5 / (std + 1e-6), "de": -0.1 * 0.5 / (std + 1e-6)}
                if norm == "zscore" else {"en": 0.05, "fr": 0.1, "de": 0.0})
        for l in LANGS:
            assert math.isclose(row[l], want.get(l, 0.0), abs_tol=1e-15), (norm, l, row[l])


def test_per_region_update_by_hand():
    """Regional Knowledge, one update: Japan ja [1] en [0]; China ja [1] en [0]; ["Japan", "China"]
    ja [1] en [1]; no region ko [1] de [0]. Per region, A moves once per (t, g) bucket (Eq. 7)."""
    router = LanguageRouter(LANGS, TOPICS, update_every=1)
    pooled = LanguageRouter(LANGS, TOPICS, update_every=1, update="pooled")
    for r in (router, pooled):
        r.record(REGIONAL, ["Japan"], ["ja", "en"], [1.0, 0.0])
        r.record(REGIONAL, ["China"], ["ja", "en"], [1.0, 0.0])
        r.record(REGIONAL, ["Japan", "China"], ["ja", "en"], [1.0, 1.0])
        r.record(REGIONAL, [], ["ko", "de"], [1.0, 0.0])
        assert r.step()
    z = 0.25 / (0.25 + 1e-6)  # Japan and China: ja 1, en 0.5 -> z = +-0.25 / std 0.25; no region: ko, de +-1
    a, rk = {l: i for i, l in enumerate(LANGS)}, TOPICS.index(REGIONAL)
    # ja, en: two region buckets -> 2 steps towards z; ko, de: one step from the no-region bucket
    want = {"ja": (1 - 0.9 ** 2) * z, "en": -(1 - 0.9 ** 2) * z, "ko": 0.1 * 0.5 / (0.5 + 1e-6),
            "de": -0.1 * 0.5 / (0.5 + 1e-6)}
    for l in LANGS:
        assert math.isclose(router.A[rk, a[l]], want.get(l, 0.0), rel_tol=1e-12, abs_tol=1e-15), l
    # pooled: ja [1, 1, 1] en [0, 0, 1] ko [1] de [0] in one bucket, one step
    m = {"ja": 1.0, "en": 1 / 3, "ko": 1.0, "de": 0.0}
    mu, sd = statistics.fmean(m.values()), statistics.pstdev(m.values())
    for l in LANGS:
        w = 0.1 * (m[l] - mu) / (sd + 1e-6) if l in m else 0.0
        assert math.isclose(pooled.A[rk, a[l]], w, rel_tol=1e-12, abs_tol=1e-15), l
    # B is the same under both rules: one step per region from its (Regional Knowledge, g) bucket
    assert torch.equal(router.B, pooled.B) and router.regions == pooled.regions == ["China", "Japan"]
    assert math.isclose(router.B[0, a["ja"]], 0.1 * z) and math.isclose(router.B[1, a["en"]], -0.1 * z)


def reference_update(A, B, records, alpha, norm, update="per_region"):
    """Slow Eqs. 6 + 7: A, B dicts {row: {lang: logit}}; records [(topic, regions, lang, r)].
    per_region: A[t][l] takes n single EMA steps towards the mean of its n (t, g) bucket targets;
    release: the same n steps towards each target in turn, in dict order; pooled: one bucket per topic."""
    buckets = defaultdict(lambda: defaultdict(list))
    for topic, regions, lang, r in records:
        regions = list(dict.fromkeys(regions))
        if update == "pooled":
            keys = [(topic, None)] + [(topic, g) for g in regions if topic == REGIONAL]
        else:
            keys = [(topic, g) for g in regions] or [(topic, None)]
        for key in keys:
            buckets[key][lang].append(r)
    targets = defaultdict(list)  # (topic, lang) -> the targets of A[topic][lang], in bucket order
    for (topic, g), per_lang in buckets.items():
        means = {l: statistics.fmean(rs) for l, rs in per_lang.items()}
        if norm == "zscore":
            mu, sd = statistics.fmean(means.values()), statistics.pstdev(means.values())
            means = {l: (m - mu) / (sd + 1e-6) for l, m in means.items()}
        for l, m in means.items():
            if g is None or update != "pooled":
                targets[(topic, l)].append(m)
            if topic == REGIONAL and g is not None:
                B[g][l] = (1 - alpha) * B[g][l] + alpha * m
    for (topic, l), xs in targets.items():
        for x in xs if update == "release" else [statistics.fmean(xs)] * len(xs):
            A[topic][l] = (1 - alpha) * A[topic][l] + alpha * x


@pytest.mark.parametrize("update", ["per_region", "pooled"])
@pytest.mark.parametrize("norm", ["zscore", "none"])
def test_update_matches_slow_reference(norm, update):
    g = torch.Generator().manual_seed(5)
    router = LanguageRouter(LANGS, TOPICS, update_every=3, alpha=0.3, bucket_norm=norm, update=update)
    A = defaultdict(lambda: defaultdict(float))
    B = defaultdict(lambda: defaultdict(float))
    pending = []
    for step in range(9):
        for _ in range(6):
            topic = TOPICS[int(torch.randint(len(TOPICS), (1,), generator=g))]
            regions = [["Japan"], ["Japan", "Mars"], [], ["Mars", "Mars"]][int(torch.randint(4, (1,), generator=g))]
            langs = [LANGS[i] for i in torch.randint(4, (5,), generator=g).tolist()]  # few, to share buckets
            rewards = torch.rand(5, generator=g, dtype=torch.float64).tolist()
            router.record(topic, regions, langs, rewards)
            pending += [(topic, regions, l, r) for l, r in zip(langs, rewards)]
        if router.step():
            reference_update(A, B, pending, 0.3, norm, update)
            pending = []
    for t, topic in enumerate(TOPICS):
        for i, l in enumerate(LANGS):
            assert math.isclose(router.A[t, i], A[topic][l], rel_tol=1e-12, abs_tol=1e-12), (topic, l)
    assert set(router.regions) == set(B) == {"Japan", "Mars"}
    for gi, region in enumerate(router.regions):
        for i, l in enumerate(LANGS):
            assert math.isclose(router.B[gi, i], B[region][l], rel_tol=1e-12, abs_tol=1e-12)


# ---- checkpoints, logs ----
def drive(router, steps, seed, out):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for _ in range(4):
            region = ["Japan", "Atlantis", "China"][int(torch.randint(3, (1,), generator=g))]
            langs = router.route(REGIONAL, [region], "ko", 8)
            out.append(langs)
            router.record(REGIONAL, [region], langs, torch.rand(8, generator=g))
        router.step()


def test_state_dict_round_trip_routes_identically():
    kw = dict(update_every=2, seed=11)
    a = LanguageRouter(LANGS, TOPICS, REGIONS[:3], **kw)
    drive(a, 7, seed=0, out=[])
    a.route(REGIONAL, ["Japan"], "ko", 8)  # a route mid-step: the next draw must not repeat it
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = LanguageRouter(LANGS, TOPICS, REGIONS[:3], **kw)
    b.load_state_dict(torch.load(buf))
    routes_a, routes_b = [], []
    drive(a, 8, seed=1, out=routes_a)
    drive(b, 8, seed=1, out=routes_b)
    assert routes_a == routes_b and torch.equal(a.A, b.A) and torch.equal(a.B, b.B)
    assert a.regions == b.regions and "Atlantis" in a.regions
    a.record(REGIONAL, ["Japan"], ["ko"], [1.0])
    with pytest.raises(RuntimeError, match="call step"):
        a.state_dict()
    with pytest.raises(ValueError, match="languages"):
        LanguageRouter(LANGS[:-1], TOPICS).load_state_dict(b.state_dict())
    with pytest.raises(ValueError, match="update 'per_region' differ.* 'pooled'"):
        LanguageRouter(LANGS, TOPICS, update="pooled").load_state_dict(b.state_dict())
    old = {k: v for k, v in b.state_dict().items() if k != "buf"}
    with pytest.raises(ValueError, match="older router"):
        LanguageRouter(LANGS, TOPICS).load_state_dict(old)


def test_snapshot_and_table():
    router = LanguageRouter(LANGS, TOPICS, REGIONS, update_every=1)
    for _ in range(3):
        router.record(REGIONAL, ["China"], ["zh", "en"], [1.0, 0.0])
        assert router.step()
    snap = json.loads(json.dumps(router.snapshot()))              # one router.jsonl line
    assert snap["step"] == 3 and list(snap["regions"]) == ["China"]
    assert all(math.isclose(sum(p.values()), 1, abs_tol=1e-4) for p in snap["topics"].values())
    assert snap["regions"]["China"]["zh"] > snap["topics"][REGIONAL]["zh"] > 1 / 15
    text = router.table()
    assert all(t in text for t in TOPICS) and "region China" in text and " zh" in text


# ---- bad input ----
def test_bad_input_raises():
    r = LanguageRouter(LANGS, TOPICS)
    cases = [
        (lambda: r.route("Sports", [], "de", 8), "valid topics: .*Reasoning"),
        (lambda: r.route("Chat", [], "xx", 8), "valid languages: .*'zh'"),
        (lambda: r.route("Chat", "China", "de", 8), "list of non-empty strings"),
        (lambda: r.route("Chat", [], "de", 1), "K_on=2"),
        (lambda: r.route("Chat", [], "de", 0), "K must be"),
        (lambda: r.probs("sports"), "valid topics"),
        (lambda: r.record("Chat", [], ["de", "xx"], [1, 0]), "unknown language 'xx'"),
        (lambda: r.record("Chat", [], ["de", "en"], [1.0]), "2 floats"),
        (lambda: r.record("Chat", [], ["de"], [float("nan")]), "finite"),
        (lambda: r.record("Chat", [], [], []), "0 floats"),
        (lambda: LanguageRouter(LANGS, TOPICS, mode="english-only"), "not one of"),
        (lambda: LanguageRouter(["de", "fr"], TOPICS, mode="input"), "'en'"),
        (lambda: LanguageRouter(LANGS, TOPICS, bucket_norm="minmax"), "bucket_norm"),
        (lambda: LanguageRouter(LANGS, TOPICS, update="sequential"), "update 'sequential' is not one of"),
        (lambda: LanguageRouter(LANGS, TOPICS, priors={"Sport": {"en": 1}}), "neither a topic"),
        (lambda: LanguageRouter(LANGS, TOPICS, priors={"Chat": {"xx": 1}}), "unknown language"),
        (lambda: LanguageRouter(LANGS, TOPICS, priors={"Chat": {"en": -1}}), ">= 0"),
        (lambda: LanguageRouter(LANGS, ["Chat", "Chat"]), "distinct"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


def test_priors_set_log_weights():
    r = LanguageRouter(LANGS, TOPICS, REGIONS, priors={"Reasoning": {"en": 0.5, "zh": 0.25}, "China": {"zh": 1}})
    row = r.A[TOPICS.index("Reasoning")]
    assert math.isclose(row[LANGS.index("en")], math.log(0.5)) and math.isclose(row[LANGS.index("de")], math.log(1e-6))
    assert math.isclose(r.B[r.regions.index("China"), LANGS.index("zh")], 0.0)
    assert list(r.snapshot()["regions"]) == ["China"]


# ---- distributed (decision 3) ----
@pytest.mark.parametrize("update", ["per_region", "pooled"])
def test_two_ranks_match_one_process(torchrun, tmp_path_factory, update):
    out = tmp_path_factory.getbasetemp() / "dist_router"
    if not out.exists():  # one torchrun launch runs both update rules
        out.mkdir()
        torchrun("tests/dist_router.py", str(out), timeout=120)
    ranks = [torch.load(out / f"rank{r}.pt")[update] for r in range(2)]
    # One process records every group and routes the even ones, as rank 0 did.
    one = LanguageRouter(dist_router.LANGUAGES, TOPICS, REGIONS[:12], update=update, **dist_router.ROUTER_KW)
    routes0 = []
    for step in range(dist_router.STEPS):
        for i, (topic, regions, lang, langs, rewards) in enumerate(dist_router.make_groups(step)):
            if i % 2 == 0:
                routes0.append(one.route(topic, regions, lang, dist_router.K))
            one.record(topic, regions, langs, rewards)
        one.step()
    want = one.state_dict()
    assert "Atlantis" in want["regions"] and "Mars" in want["regions"]
    for got in ranks:
        assert got["state"]["regions"] == want["regions"] and got["state"]["update"] == update
        for key in ("A", "B", "buf", "region_seen"):
            assert torch.equal(got["state"][key], want[key]), key
    assert want["A"].abs().sum() > 0 and want["B"].abs().sum() > 0
    # draws are seeded from (seed, rank, step, call): rank 0 is reproduced, rank 1 draws otherwise
    assert routes0 == ranks[0]["routes"]
    probe = [one.route(*dist_router.PROBE) for _ in range(4)]
    assert probe == ranks[0]["probe"] and probe != ranks[1]["probe"]


def regional_buffer(seed: int, groups: int = 160, K: int = 8) -> list[tuple]:
    """The groups of one router update (32 prompts x 5 steps), languages drawn uniformly: half are
    Regional Knowledge over 1-2 of the 24 regions, each region with its own best language (+0.3);
    the other topics have no region and en as best language. [(topic, regions, langs, rewards)]"""
    g = torch.Generator().manual_seed(seed)
    best = torch.randint(len(LANGS), (len(REGIONS),), generator=torch.Generator().manual_seed(99)).tolist()
    out = []
    for _ in range(groups):
        regional = bool(torch.rand(1, generator=g) < 0.5)
        topic = REGIONAL if regional else TOPICS[1 + int(torch.randint(len(TOPICS) - 1, (1,), generator=g))]
        picks = torch.randperm(len(REGIONS), generator=g)[:1 + int(torch.randint(2, (1,), generator=g))].tolist()
        regions = [REGIONS[j] for j in picks] if regional else []
        good = {LANGS[best[j]] for j in picks} if regional else {"en"}
        langs = [LANGS[j] for j in torch.randint(len(LANGS), (K,), generator=g).tolist()]
        noise = 0.15 * torch.randn(K, generator=g, dtype=torch.float64)
        out.append((topic, regions, langs, [min(1.0, max(0.0, 0.5 + 0.3 * (l in good) + float(e)))
                                            for l, e in zip(langs, noise)]))
    return out


def compare_updates(updates: int = 5, orders: int = 10) -> None:
    """Print max |A[Regional Knowledge]| after each update under both rules of router.py, and how
    much the release's sequential rule depends on the order of the buckets (shuffled arrivals)."""
    bufs, rk = [regional_buffer(s) for s in range(updates)], TOPICS.index(REGIONAL)
    free = []  # A[Regional Knowledge] after each update, order-free per_region rule
    for update in ("pooled", "per_region"):
        router, maxes = LanguageRouter(LANGS, TOPICS, REGIONS, update=update, update_every=1), []
        for groups in bufs:
            for group in groups:
                router.record(*group)
            router.step()
            maxes.append(f"{float(router.A[rk].abs().max()):.3f}")
            free += [router.A[rk].clone()] if update == "per_region" else []
        print(f"{update:10s} max |A[{REGIONAL}]| after 1..{updates} updates: {' '.join(maxes)}")
    seq = torch.zeros(orders, updates, len(LANGS), dtype=torch.float64)  # the release's rule per order
    for o in range(orders):
        A, B = defaultdict(lambda: defaultdict(float)), defaultdict(lambda: defaultdict(float))
        for u, groups in enumerate(bufs):
            shuffled = [groups[i] for i in torch.randperm(len(groups), generator=torch.Generator().manual_seed(o))]
            rollouts = [(t, g, l, r) for t, g, ls, rs in shuffled for l, r in zip(ls, rs)]
            reference_update(A, B, rollouts, 0.1, "zscore", "release")
            seq[o, u] = torch.tensor([A[REGIONAL][l] for l in LANGS], dtype=torch.float64)
    peak, lo, hi = seq.abs().amax(2), seq.min(0).values, seq.max(0).values  # (orders, updates), (updates, n_langs)
    print(f"release    max |A[{REGIONAL}]| over {orders} arrival orders: "
          + " ".join(f"{a:.3f}-{b:.3f}" for a, b in zip(peak.min(0).values.tolist(), peak.max(0).values.tolist())))
    print("  largest change of one entry between two orders, per update: "
          + " ".join(f"{d:.3f}" for d in (hi - lo).amax(1).tolist()))
    free = torch.stack(free)
    outside = ((free - hi).clamp(min=0) + (lo - free).clamp(min=0)).max()
    print(f"  per_region (order-free) outside the range of those orders by at most {float(outside):.3f}")


if __name__ == "__main__":
    for mode in ("learned", "uniform", "monolingual"):
        router, reward, late, converged, updates = simulate(mode)
        print(f"{mode:12s} mean reward {reward:.4f}  last 50 steps {late:.4f}"
              + (f"  updates to convergence {converged} of {updates}" if mode == "learned" else ""))
        if mode == "learned":
            _, best = make_bandit()
            print("best language per topic:", {t: LANGS[int(b)] for t, b in zip(SIM_TOPICS, best)})
            print(router.table())
    compare_updates()
