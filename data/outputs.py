"""
Writing outputs without destroying anything: checks a script runs in its first second, and atomic
writes of files and model directories.

    from data.outputs import OutputError, check_output, check_writable, atomic_write, write_dir
    check_output("out/sft", directory=True, overwrite=args.overwrite)  # OutputError now, not after training
    check_writable("out", directory=True)             # may exist and hold files (a run directory)
    with atomic_write("data/train.jsonl") as f:       # a temporary file, renamed over the path at the end
        f.write(text)
    write_dir("out/sft", lambda tmp: model.save_pretrained(tmp))   # a directory, the same way

Decisions:
1. Every output is written under a fresh temporary name beside it (same directory, so the rename is
   atomic), then os.replace'd over its path: a reader never sees half a file, and a write that fails
   removes its own temporary and leaves the path as it was. Nothing else is ever removed.
2. An existing output is refused unless the caller says to replace it (the scripts' --overwrite).
   An empty directory is no output: nothing can be lost. A directory is replaced only when it is
   recognisably a model directory this project writes: config.json, one or more *.safetensors and
   nothing but the files `save_pretrained` and checkpoint.py write (MODEL_FILES). Any other file in
   it (a user's notes, a run's metrics.jsonl, a sub-directory) refuses the replacement, --overwrite
   or not: `--out_dir .` can never empty the working directory.
3. "Writable" is tested, not guessed from permission bits (root ignores them; a read-only mount does
   not): a probe file is created and removed in the nearest existing ancestor directory. A missing
   parent is fine (it is created when the output is written); a file where a directory is needed,
   or the reverse, is an error naming both.
4. Temporary files and directories are created with O_EXCL / mkdir under a name no one holds, so a
   user's file that happens to carry a temporary-looking name is never written over or removed;
   they get the usual permissions (umask), not tempfile's owner-only ones.
"""
import contextlib
import os
import re
import secrets
import shutil

MODEL_FILES = re.compile(  # what save_pretrained (model, tokenizer) and checkpoint.py write (Decision 2)
    r"(config|generation_config|tokenizer|tokenizer_config|special_tokens_map|added_tokens|vocab|"
    r"chat_template|model\.safetensors\.index)\.json|model(-\d+-of-\d+)?\.safetensors|merges\.txt|"
    r"vocab\.txt|tokenizer\.model|chat_template\.jinja|trainer_state\.pt")


class OutputError(ValueError):
    """An output that cannot or may not be written; the message names the path and why."""


def foreign_files(path: str) -> list[str]:
    """The entries of directory `path` that no model directory of this project holds (Decision 2)."""
    return sorted(n + ("/" if os.path.isdir(os.path.join(path, n)) else "") for n in os.listdir(path)
                  if not (MODEL_FILES.fullmatch(n) and os.path.isfile(os.path.join(path, n))))


def is_model_dir(path: str) -> bool:
    """True for a directory holding config.json, a *.safetensors file and nothing foreign."""
    names = os.listdir(path)
    return ("config.json" in names and any(n.endswith(".safetensors") for n in names)
            and not foreign_files(path))


def _probe(directory: str, path: str) -> None:
    """OutputError unless a file can be created in `directory` (Decision 3)."""
    probe = _fresh_name(directory, "probe")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        os.remove(probe)
    except OSError as e:
        raise OutputError(f"{path}: cannot write in {directory} ({e.strerror})") from None


def check_writable(path: str, directory: bool = False) -> None:
    """OutputError unless `path` can be written now (Decision 3): not a file where a directory is
    needed (`directory`) or the reverse, and files can be created in it (an existing directory) or
    in its nearest existing ancestor. Existing content is allowed; nothing is left behind."""
    full = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(full) and not directory:
        raise OutputError(f"{path}: is a directory; a file is needed here")
    if os.path.lexists(full) and not os.path.isdir(full) and directory:
        raise OutputError(f"{path}: is a file; a directory is needed here")
    where = full if directory and os.path.isdir(full) else os.path.dirname(full)
    while not os.path.lexists(where):
        where = os.path.dirname(where)
    if not os.path.isdir(where):
        raise OutputError(f"{path}: {where} is a file, not a directory, so {path} cannot be created")
    _probe(where, path)


def check_output(path: str, directory: bool = False, overwrite: bool = False,
                 flag: str = "--overwrite") -> None:
    """OutputError unless the output `path` may be written (Decisions 2, 3): check_writable; an
    existing file only with `overwrite`; an existing non-empty directory only with `overwrite` and
    only if it is a model directory (never one holding anything else, `overwrite` or not)."""
    check_writable(path, directory)
    full = os.path.abspath(os.path.expanduser(path))
    if directory and os.path.isdir(full) and os.listdir(full):
        if not is_model_dir(full):
            foreign = foreign_files(full)
            what = (f"it holds {', '.join(foreign[:4])}{', ...' if len(foreign) > 4 else ''}" if foreign
                    else "no config.json and *.safetensors")
            raise OutputError(f"{path}: exists and is not a model directory ({what}); it is never "
                              "replaced: choose another path")
        if not overwrite:
            raise OutputError(f"{path}: holds a model directory already; pass {flag} to replace it, "
                              "or choose another path")
        _probe(os.path.dirname(full), path)                       # the swap renames in the parent
    elif not directory and os.path.lexists(full) and not overwrite:
        raise OutputError(f"{path}: exists; pass {flag} to replace it, or choose another path")


def _fresh_name(parent: str, base: str) -> str:
    return os.path.join(parent, f".tmp-{base}-{os.getpid()}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def atomic_write(path: str, encoding: str = "utf-8"):
    """A text file object on a new temporary file beside `path`, renamed over `path` when the block
    ends; on any error (Ctrl-C included) the temporary is removed and `path` is untouched (Decision 1)."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    while True:
        tmp = _fresh_name(parent, os.path.basename(path))
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)    # umask applies (Decision 4)
            break
        except FileExistsError:
            continue
    try:
        with open(fd, "w", encoding=encoding, newline="") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_dir(path: str, fill) -> None:
    """Directory `path` written atomically (Decision 1): `fill(tmp)` writes its files into a new
    temporary directory beside it, which then replaces `path`. An existing `path` must be empty or
    a model directory (removed after the swap); anything else raises OutputError before `fill` runs.
    On any error the temporary directory is removed and `path` is as it was."""
    full = os.path.abspath(os.path.expanduser(path))
    if os.path.lexists(full):
        check_output(path, directory=True, overwrite=True)                # refuses anything else
    parent = os.path.dirname(full)
    os.makedirs(parent, exist_ok=True)
    tmp = _fresh_dir(parent, os.path.basename(full))
    aside, moved = None, False
    try:
        fill(tmp)
        if os.path.isdir(full) and os.listdir(full):          # a model directory: swap, then remove it
            aside = _fresh_dir(parent, os.path.basename(full) + "-old")
            os.replace(full, aside)
            moved = True
        os.replace(tmp, full)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if moved:
            os.replace(aside, full)                           # put the old one back
        elif aside:
            os.rmdir(aside)
        raise
    if moved:
        shutil.rmtree(aside, ignore_errors=True)


def _fresh_dir(parent: str, base: str) -> str:
    """A new empty directory beside the output, under a name no one holds (Decision 4)."""
    while True:
        tmp = _fresh_name(parent, base)
        try:
            os.mkdir(tmp)
            return tmp
        except FileExistsError:
            continue
