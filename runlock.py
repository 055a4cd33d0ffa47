"""
One run per directory: an OS lock on the run directory, held for the run's life.

    from runlock import RunLocked, hold_run_dir, lock_dir
    hold_run_dir(out_dir)                          # lrpo.py, every rank: rank 0 takes the lock
    held = lock_dir(os.path.dirname(out), exclusive=False)   # sft.py: refused while a run holds it

Imports grpo.py (its all_gather) only.

Decisions:
1. The lock is an exclusive flock on out_dir/.lock, taken by rank 0 alone (on several nodes the
   global rank 0) without waiting; every rank learns the outcome through one all_gather, so all
   exit together. The holder writes its PID and host into the file: a second run (fresh or
   --resume auto) exits at once naming them.
2. The OS drops a flock when its process dies, kill -9 included: a lock is never stale. The file is
   removed at a normal exit while still locked; a process that opened it meanwhile finds, once it
   has the lock, that the path names another file (or none) and locks afresh, so two runs never
   both believe they hold the directory.
3. sft.py writing into a run directory (its --out_dir, or the directory above it) takes a shared
   lock on an existing lock file: refused while a run holds the directory, and a run cannot start
   there while it writes; it never creates a lock file in a directory that has none.
4. On a shared file system the lock needs flock across nodes (NFS: yes; Lustre: mounted with
   -o flock). Where the file system refuses flock, the run warns and goes on unlocked rather than
   not at all.
"""
import atexit
import contextlib
import fcntl
import os
import socket

import torch.distributed as dist

from grpo import all_gather

LOCK = ".lock"


class RunLocked(RuntimeError):
    """Another process holds the run directory; the message names it (PID and host)."""


def lock_dir(directory: str, exclusive: bool = True, log=print):
    """Take the flock on directory/.lock (Decisions 1-3), without waiting. exclusive (a run): the file
    is created, this process's PID and host written in it, and the lock held (the file removed at
    exit) until the process ends; shared (sft.py writing into a run's directory): only an existing
    lock file is taken, held while the returned file object lives. -> the open lock file, or None
    (no lock file to share; a file system without flock, with a warning). RunLocked naming
    the holder when another process holds it."""
    path = os.path.join(directory, LOCK)
    while True:
        try:
            f = open(path, "a+" if exclusive else "r", encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            if exclusive:
                raise
            return None                           # no lock file, or no directory: nothing to share
        try:
            fcntl.flock(f, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise RunLocked(f"{directory} is in use by another run ({_holder(path)}): one run per directory; "
                            "wait for it to end, stop it, or choose another directory") from None
        except OSError as e:
            f.close()
            log(f"warning: cannot lock {path} ({e.strerror}): one run per directory is not enforced here")
            return None
        if _same_file(f, path):                   # else its holder removed it meanwhile: lock the new one
            break
        f.close()
    if exclusive:
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} {socket.gethostname()}\n")
        f.flush()
        atexit.register(_unlock, f, path)
    return f


def _holder(path: str) -> str:
    try:
        pid_host = open(path, encoding="utf-8").read().split()
    except OSError:
        pid_host = []
    return f"PID {pid_host[0]} on {pid_host[1]}" if len(pid_host) == 2 else "a process starting up"


def _same_file(f, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(f.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def _unlock(f, path: str) -> None:
    """At exit: remove the lock file while still holding it, then let go."""
    if not f.closed and _same_file(f, path):
        with contextlib.suppress(OSError):
            os.remove(path)
    f.close()


def hold_run_dir(out_dir: str, log=print) -> None:
    """Rank 0 creates out_dir and takes its exclusive lock for the rest of the process's life
    (Decisions 1-3); every rank learns the outcome: RunLocked naming the holder, on every rank.
    Collective: every rank calls it."""
    error = None
    if not dist.is_initialized() or dist.get_rank() == 0:
        try:
            os.makedirs(out_dir, exist_ok=True)
            lock_dir(out_dir, exclusive=True, log=log)
        except RunLocked as e:
            error = str(e)
        except OSError as e:
            error = f"{out_dir}: cannot create its lock ({e.strerror})"
    if error := all_gather(error)[0]:
        raise RunLocked(error)
