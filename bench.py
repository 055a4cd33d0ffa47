"""
Benchmarks for LRPO, one subcommand each. Figures are always ratios against a baseline measured in
the same run, on the same machine; nothing here is asserted by the tests.

    python bench.py logprobs      # grpo.token_logprobs vs naive log_softmax().gather(), CPU
"""
import argparse
import gc
import os
import platform
import resource
import sys
import threading
import time

import torch


def machine() -> str:
    """One line naming the machine, printed above every table."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def table(rows: list[dict]) -> str:
    """A markdown table from a list of dicts sharing keys."""
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    out += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(out)


# --- dispatch: each subcommand is a function above this line, registered here ---
SUBCOMMANDS = {
}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=sorted(SUBCOMMANDS), help="which benchmark to run")
    args = parser.parse_args()
    print(f"# bench {args.what} on {machine()}")
    SUBCOMMANDS[args.what]()
