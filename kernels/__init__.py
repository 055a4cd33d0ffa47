"""
Triton kernels for LRPO, each beside a plain PyTorch reference that defines it.

    from kernels import fused_grpo_loss            # Triton: CUDA, or TRITON_INTERPRET=1 on CPU
    from kernels import grpo_loss_reference        # the same function in plain PyTorch

Decisions:
1. Importing this package imports nothing: each name is loaded from its submodule on first use
   (PEP 562 module __getattr__). transformers probes for a module named `kernels` (its hub-kernels
   integration) and, run from this repository's root, imports ours at every model import; it then
   finds no __version__, so it treats us as "not the hub package" and goes on. Importing triton
   there would make every model import need triton (and fail on machines without it).
2. triton is needed only for `fused_grpo_loss` (Linux; requirements.txt marks it so). Without it
   that name raises an ImportError that says so; the plain PyTorch references work anywhere.
3. Calling the kernel needs CUDA, or the Triton interpreter: TRITON_INTERPRET=1 set before triton
   is first imported (tests/conftest.py does this).
"""
import importlib

_SUBMODULE = {                                   # public name -> submodule that defines it
    "fused_grpo_loss": "kernels.grpo_loss",
    "grpo_loss_reference": "kernels.reference",
    "group_advantages_reference": "kernels.reference",
}
__all__ = list(_SUBMODULE)


def __getattr__(name: str):
    if name not in _SUBMODULE:
        # AttributeError, not ImportError: getattr(kernels, "__version__", default) must work.
        raise AttributeError(f"module 'kernels' has no attribute {name!r}")
    try:
        module = importlib.import_module(_SUBMODULE[name])
    except ImportError as e:
        if (e.name or "").split(".")[0] != "triton":
            raise
        raise ImportError(f"kernels.{name} needs triton (Linux: pip install triton==3.7.1, which "
                          f"CUDA builds of torch pull in); without it use grpo.py's PyTorch loss "
                          f"(kernel='torch') or kernels.reference") from e
    value = getattr(module, name)
    globals()[name] = value                      # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
