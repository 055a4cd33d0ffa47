"""
Preemption: a scheduler's SIGTERM or SIGUSR1 ends a run after the step in flight, with one
checkpoint, on every rank together.

    from preempt import PREEMPTED, StopSignals
    stop = StopSignals()                   # from now on SIGTERM and SIGUSR1 only set a flag
    for step in range(start, total):
        ...                                # the step runs to its end whatever arrives meanwhile
        if stop.agreed():                  # every rank, every step: did any rank get a signal?
            save_checkpoint(...)
            break
    if stop.stopped:
        stop.exit("stopped after step N: saved ckpt-N; continue with --resume auto")   # exit code 75

Imports grpo.py (its all_reduce_max) only.

Decisions:
1. The handler only records the signal (the first one wins): no I/O and no collective can run
   inside it, since the signal may land while a rank is inside a collective or a CUDA call. System
   calls it interrupts are restarted (siginterrupt False), so a blocked read or collective in a C
   library carries on instead of failing with EINTR.
2. The ranks agree once per step, at its end: one all-reduce (max) of one number, the signal seen
   by this rank or 0. A signal that reaches one rank only (a `kill` of one worker; a scheduler that
   signals some processes before others) thus stops every rank after the same step. This costs
   one small collective per step, next to the step's own hundreds.
3. A signal that lands during the set-up (model loading, the warm start) takes effect at the end
   of the first step; one that lands after the last step's agreement changes nothing (the run
   ends with its final checkpoint anyway).
4. Exit code 75 (EX_TEMPFAIL of sysexits.h: "temporary failure, try again"): the run did not
   finish but can continue with --resume auto. 0 stays "finished", 1 "failed". Under torchrun
   the workers exit 75 and torchrun itself reports them as failed children and exits 1.
5. SIGINT (Ctrl-C) is left alone: a person at the terminal means stop now (so does SIGKILL). The
   price of a flag: when one rank crashes, the SIGTERM torchrun sends the others no longer ends them
   at once (they wait in a collective for the dead rank); torchrun SIGKILLs them after its shutdown
   timeout (30 s by default), or the collective times out first.
"""
import signal
import sys

import torch

from grpo import all_reduce_max

PREEMPTED = 75                                                  # Decision 4
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignals:
    """SIGTERM and SIGUSR1 handlers that only set `signum` (Decision 1); `agreed()` asks all ranks."""

    def __init__(self, signals=SIGNALS):
        self.signum = 0                                         # the first signal this rank got, 0: none
        self.stopped = 0                                        # the one all ranks agreed on, 0: none
        for s in signals:
            signal.signal(s, self._handle)
            signal.siginterrupt(s, False)

    def _handle(self, signum, frame) -> None:
        self.signum = self.signum or signum

    def agreed(self, group=None) -> int:
        """The signal number any rank received so far (the largest), or 0; the same on every rank.
        Collective: every rank calls it at the same point of every step (Decision 2)."""
        got = all_reduce_max(torch.tensor([float(self.signum)], dtype=torch.float64), group)
        self.stopped = int(got.item())
        return self.stopped

    @property
    def name(self) -> str:
        """The agreed signal's name, e.g. 'SIGTERM'."""
        return signal.Signals(self.stopped).name if self.stopped else ""

    def exit(self, message: str, show: bool = True):
        """Print `message` (one line, when `show`: rank 0) and exit with PREEMPTED (Decision 4)."""
        if show:
            print(message, file=sys.stderr, flush=True)
        raise SystemExit(PREEMPTED)
