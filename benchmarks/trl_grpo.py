"""
The TRL side of `python bench.py step --vs_trl PYTHON` (benchmarks/step.py, decision 5): TRL's
GRPOTrainer on the given policy and prompts, wall time per optimizer step. Run with the interpreter
of the throwaway virtual environment that has TRL (never a requirement of this project):

    /tmp/trl-venv/bin/python benchmarks/trl_grpo.py --model DIR --prompts prompts.json --steps 8 --out times.json

Decisions:
1. The settings of lrpo.py's side: each step 8 prompts x 8 generations = 64 rollouts of 32 new
   tokens (temperature 1, top_p 1, no top-k), beta 0 (no reference model), one optimizer step per
   generation batch (steps_per_generation = gradient_accumulation_steps = num_iterations = 1),
   fp32 on the CPU. Prompts are given already templated, as lrpo.py builds them.
2. A step is timed from the Trainer's on_step_begin to on_step_end: generation, the reward (a
   trivial function of the completion's length), the loss, backward and the optimizer step; logging
   and saving happen after on_step_end and are left out.
"""
import argparse
import json
import tempfile
import time

from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

import trl
from trl import GRPOConfig, GRPOTrainer


class StepTimer(TrainerCallback):
    def __init__(self):
        self.step_s, self.t0 = [], None

    def on_step_begin(self, args, state, control, **kw):
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.step_s.append(time.perf_counter() - self.t0)


def main():
    ap = argparse.ArgumentParser(description="TRL GRPOTrainer step times")
    ap.add_argument("--model", required=True, help="policy directory (with its tokenizer)")
    ap.add_argument("--prompts", required=True, help="JSON list of the 8 templated prompts")
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps")
    ap.add_argument("--out", required=True, help="JSON file for the step times")
    ap.add_argument("--out_dir", default=None, help="the Trainer's output directory (default: a temporary one)")
    a = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model)
    prompts = json.load(open(a.prompts))
    lengths = []

    def reward(completions, completion_ids, **kw):                 # trivial, and records the lengths
        lengths.extend(len(c) for c in completion_ids)
        return [float(len(c) % 7) for c in completions]
    config = GRPOConfig(
        output_dir=a.out_dir or tempfile.mkdtemp(), per_device_train_batch_size=8 * len(prompts),
        num_generations=8, max_completion_length=32, temperature=1.0, top_p=1.0, top_k=0, beta=0.0,
        learning_rate=1e-5, max_steps=a.steps, steps_per_generation=1, gradient_accumulation_steps=1,
        num_iterations=1, logging_steps=a.steps, report_to="none", save_strategy="no", use_cpu=True,
        bf16=False, disable_tqdm=True, seed=0, dataloader_num_workers=0)
    timer = StepTimer()
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, processing_class=tok,
                          train_dataset=Dataset.from_dict({"prompt": prompts}), callbacks=[timer])
    trainer.train()
    json.dump({"step_s": timer.step_s, "completion_lengths": sorted(set(lengths)),
               "trl_version": trl.__version__}, open(a.out, "w"))


if __name__ == "__main__":
    main()
