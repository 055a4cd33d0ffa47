"""
Benchmarks for LRPO, one subcommand each. Figures are always ratios against a baseline measured in
the same run, on the same machine; nothing here is asserted by the tests.

    python bench.py logprobs      # grpo.token_logprobs vs naive log_softmax().gather(), CPU
    python bench.py reward        # compute_rewards throughput: encoder vs language ID, tiny encoder
    python bench.py kernel        # fused Triton GRPO loss vs eager / chunked / Liger (GPU; CPU: torch paths)
    python bench.py rollout       # 2-rank FSDP2 generation: inside grpo.unsharded vs synced_gpus=True
    python bench.py step          # time split of one lrpo.py --tiny step (generate / reward / train)

The code of each is benchmarks/NAME.py (its `main(argv)` takes the options after the name);
benchmarks/timing.py holds the shared timing and memory helpers.
"""
import argparse
import os

from benchmarks import kernel, logprobs, reward, rollout, step
from benchmarks.timing import machine

SUBCOMMANDS = {"logprobs": logprobs, "reward": reward, "kernel": kernel, "rollout": rollout, "step": step}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=sorted(SUBCOMMANDS), help="which benchmark to run")
    args, rest = parser.parse_known_args()
    if "RANK" not in os.environ:                              # not a torchrun worker of `rollout`
        print(f"# bench {args.what} on {machine()}")
    SUBCOMMANDS[args.what].main(rest)
