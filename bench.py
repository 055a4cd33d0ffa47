"""
Benchmarks for LRPO, one subcommand each. Figures are always ratios against a baseline measured in
the same run, on the same machine; nothing here is asserted by the tests.

    python bench.py logprobs      # grpo.token_logprobs vs naive log_softmax().gather(), CPU
    python bench.py reward        # compute_rewards throughput: encoder vs language ID, tiny encoder
    python bench.py kernel        # fused Triton GRPO loss vs eager / chunked / Liger (GPU; CPU: torch paths)
    python bench.py rollout       # sampler.py vs generate() (tiny, ~40M Qwen2); 2-rank FSDP2 generation
    python bench.py step          # time split of one lrpo.py --tiny step (generate / reward / train)
    python bench.py step --arch qwen2.5-1.5b   # a few steps of a paper architecture, random weights
    python bench.py step --vs_trl /tmp/trl-venv/bin/python   # lrpo.py's step vs TRL's GRPOTrainer
    python bench.py memory        # memory plan per GPU rank (8 x 80 GiB) for the paper's architectures
    python bench.py gpu           # everything above that needs a GPU, in one command (GPU only)

The code of each is benchmarks/NAME.py (its `main(argv)` takes the options after the name);
benchmarks/timing.py holds the shared timing and memory helpers.
"""
import argparse
import os
import sys

from benchmarks import gpu, kernel, logprobs, memory, reward, rollout, step
from benchmarks.timing import machine

SUBCOMMANDS = {"logprobs": logprobs, "reward": reward, "kernel": kernel, "rollout": rollout, "step": step,
               "memory": memory, "gpu": gpu}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=sorted(SUBCOMMANDS), help="which benchmark to run")
    args = parser.parse_args(sys.argv[1:2])                   # the rest, -h included, is the benchmark's
    if "RANK" not in os.environ:                              # not a torchrun worker of `rollout`
        print(f"# bench {args.what} on {machine()}")
    SUBCOMMANDS[args.what].main(sys.argv[2:])
