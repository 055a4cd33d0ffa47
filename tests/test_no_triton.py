"""
Everything but the fused kernel works without triton (which has Linux wheels only), run from the
repository root, where `import kernels` finds ours.

    python -m pytest -q tests/test_no_triton.py

transformers probes for a module named `kernels` (its hub-kernels integration) at every model
import; from the repository root that is kernels/. Before kernels/__init__.py became lazy this
imported triton, so without triton `from transformers import Qwen2ForCausalLM` failed with
"Could not import module 'Qwen2ForCausalLM'".

Decisions:
1. triton is hidden the way "not installed" looks: a PathFinder that does not find it, so
   `importlib.util.find_spec("triton")` is None and `import triton` raises ModuleNotFoundError
   (transformers and torch then take their no-triton paths). `sys.modules["triton"] = None`
   would instead make find_spec raise, which no real install does.
2. A subprocess from the repository root (`python -c`, so the root is sys.path[0], as for
   `python lrpo.py`): no triton imported by this test process can leak in.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HIDE_TRITON = """
import importlib.machinery, sys
class NoTriton(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "triton" or name.startswith("triton."):
            return None
        return super().find_spec(name, path, target)
sys.meta_path = [NoTriton if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
"""

CHECKS = """
import json, sys
import torch
out = {}
from transformers import Qwen2Config, Qwen2ForCausalLM
cfg = Qwen2Config(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=1)
model = Qwen2ForCausalLM(cfg).eval()
with torch.no_grad():
    out["logits_shape"] = list(model(torch.tensor([[1, 2, 3]])).logits.shape)
import grpo, reward, router
from kernels import grpo_loss_reference, group_advantages_reference
out["reference_A"] = group_advantages_reference(torch.tensor([0.0, 1.0]), 2).tolist()
from transformers.utils.import_utils import is_kernels_available
out["hub_kernels_available"] = is_kernels_available()
try:
    from kernels import fused_grpo_loss
    out["fused_error"] = None
except ImportError as e:
    out["fused_error"] = f"{type(e).__name__}: {e}"
out["triton_imported"] = sys.modules.get("triton") is not None
print("RESULT " + json.dumps(out))
"""


def test_repo_works_without_triton():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-c", HIDE_TRITON + CHECKS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, \
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT "):])
    assert out["logits_shape"] == [1, 3, 64]
    A = out["reference_A"]                           # rewards (0, 1): +-0.5 / (std 2**-0.5 + eps)
    assert A[0] == -A[1] and abs(A[1] - 0.5 / (2 ** -0.5 + 1e-6)) < 1e-6
    assert out["hub_kernels_available"] is False, "our kernels/ taken for the hub `kernels` package"
    assert out["fused_error"] is not None, "fused_grpo_loss imported without triton?"
    assert out["fused_error"].startswith("ImportError") and "triton" in out["fused_error"]
    assert not out["triton_imported"]
