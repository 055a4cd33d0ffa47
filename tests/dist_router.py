"""
Two-rank check of the router's distributed update, run by tests/test_router.py:

    torchrun --standalone --nproc_per_node=2 tests/dist_router.py OUT_DIR

Every rank builds the same stream of rollout groups (make_groups, independent of the rank), routes
and records its own half (group i goes to rank i % world_size), and calls step() every step, once per
update rule of router.py (decision 2: per_region, pooled). Each rank writes OUT_DIR/rank{r}.pt
with, per rule, its final state_dict, the routes it drew and 4 routes of one fixed probe prompt;
the test compares them with one process that records every group.

Decisions:
1. Rewards lie on a grid of 1/16, so every sum is exact in float64 whatever the order of the
   additions: the 2-rank router must equal the 1-process router bit for bit, not just closely.
2. Some groups name regions the router has never seen ("Atlantis" only on even groups, "Mars" only
   on odd ones, each first met in a step where the other is new too), so the ranks must agree on
   new region rows before they sum their buffers.
"""
import os
import sys

import torch
import torch.distributed as dist

from router import REGIONS, TOPICS, UPDATES, LanguageRouter

LANGUAGES = "ar de en es fr id it ja ko nl pl pt ru vi zh".split()
STEPS, GROUPS, K = 12, 10, 8
ROUTER_KW = dict(update_every=3, seed=7)   # 4 updates in 12 steps
PROBE = ("Chat", [], "de", K)              # routed 4 times by every rank at the end


def make_groups(step: int) -> list[tuple]:
    """The rollout groups of one training step: (topic, regions, lang, langs, rewards)."""
    g = torch.Generator().manual_seed(1000 + step)
    groups = []
    for i in range(GROUPS):
        topic = TOPICS[int(torch.randint(len(TOPICS), (1,), generator=g))]
        picks = torch.randperm(len(REGIONS), generator=g)[:int(torch.randint(3, (1,), generator=g))]
        regions = [REGIONS[j] for j in picks.tolist()]
        if step >= 4 and i % 5 == 0:  # decision 2: groups 0 and 5 go to different ranks
            topic, regions = "Regional Knowledge", regions + ["Atlantis" if i == 0 else "Mars"]
        lang = LANGUAGES[int(torch.randint(len(LANGUAGES), (1,), generator=g))]
        langs = [LANGUAGES[j] for j in torch.randint(len(LANGUAGES), (K,), generator=g).tolist()]
        rewards = torch.randint(17, (K,), generator=g).double() / 16  # decision 1
        groups.append((topic, regions, lang, langs, rewards))
    return groups


def run(router: LanguageRouter, rank: int, world: int) -> list[list[str]]:
    """Route and record this rank's share of every step; return the routes it drew."""
    routes = []
    for step in range(STEPS):
        for topic, regions, lang, langs, rewards in make_groups(step)[rank::world]:
            routes.append(router.route(topic, regions, lang, K))
            router.record(topic, regions, langs, rewards)
        router.step()
    return routes


if __name__ == "__main__":
    out_dir = sys.argv[1]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    result = {}
    for update in UPDATES:
        router = LanguageRouter(LANGUAGES, TOPICS, REGIONS[:12], update=update, **ROUTER_KW)
        routes = run(router, rank, world)
        probe = [router.route(*PROBE) for _ in range(4)]  # same inputs on both ranks: draws must differ
        result[update] = {"state": router.state_dict(), "routes": routes, "probe": probe}
    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()
