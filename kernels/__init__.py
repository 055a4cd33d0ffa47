"""
Triton kernels for LRPO, each beside a plain PyTorch reference that defines it.

    from kernels import fused_grpo_loss            # Triton: CUDA, or TRITON_INTERPRET=1 on CPU
    from kernels import grpo_loss_reference        # the same function in plain PyTorch

Decisions:
1. Importing this package needs triton but no GPU; only calling the kernel does (or the Triton
   interpreter, enabled by TRITON_INTERPRET=1 before this import, as tests/conftest.py does).
"""
from kernels.grpo_loss import fused_grpo_loss
from kernels.reference import group_advantages_reference, grpo_loss_reference

__all__ = ["fused_grpo_loss", "grpo_loss_reference", "group_advantages_reference"]
