"""No script removes or overwrites what it did not write (data/outputs.py): a user's file planted in
every output location of sft.py, calibrate.py, eval.py, data/prepare.py, data/prepare_sft.py and
data/prepare_mgsm.py survives, and
the refusal comes in the first second, before any model loads; --overwrite replaces a model
directory and nothing else; checkpoint.save_model_dir never removes a directory it did not write.

The scripts run in this process (their main(argv)); each test snapshots the whole temporary tree
(every path and its bytes) and compares it after the run."""
import json
import os
import shutil
import time

import pytest

from conftest import ROOT

SAMPLE = os.path.join(ROOT, "data", "sample")
USER = b"a user's file: nobody but its owner may remove it\n"
CARE = [{"question": q, "answer": a, "language": lang, "topic": "Regional Knowledge", "region": region}
        for q, a, lang, region in [("京都の祇園祭はいつですか？", "毎年七月です。", "Japanese", "Japan"),
                                   ("富士山の高さは？", "三千七百七十六メートルです。", "Japanese", "Japan"),
                                   ("ما هو المنسف؟", "طبق أردني من لحم الضأن.", "Arabic", "Arab World"),
                                   ("ما هي عاصمة الأردن؟", "عمّان.", "Arabic", "Arab World")]]


def snapshot(root) -> dict:
    """{relative path: bytes (None for a directory)} of everything under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(d, name)
            out[os.path.relpath(path, root)] = None if os.path.isdir(path) else open(path, "rb").read()
    return out


def run_main(main, argv) -> str:
    """A script's refusal (SystemExit's message, or the ValueError its main raises), or '' if it ran."""
    try:
        main(argv)
    except SystemExit as e:
        return str(e.code)
    except ValueError as e:                                        # RecordError, OutputError
        return str(e)
    return ""


def plant(path) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(USER)


@pytest.fixture
def scripts(tmp_path, tiny_policy_dir, tiny_encoder_dir, monkeypatch):
    """{script: (main, argv without outputs, {output flag: default location})}, with small inputs
    written under tmp_path/in; the teacher of prepare_sft.py answers from the sample SFT set."""
    import calibrate
    import data.prepare as prepare
    import data.prepare_mgsm as prepare_mgsm
    import eval as E
    import data.prepare_sft as prepare_sft
    import sft
    from data.records import load_sft
    from reward import LANGUAGE_NAMES, LANGUAGES
    src = tmp_path / "in"
    src.mkdir()
    with open(src / "care_train.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in CARE)
    with open(src / "aya_train.jsonl", "w", encoding="utf-8") as f:
        f.write(json.dumps({"inputs": "Quel est le plus long fleuve d'Afrique ?", "language": "French"}) + "\n")
    with open(src / "sft.jsonl", "w", encoding="utf-8") as f:
        f.writelines(open(os.path.join(SAMPLE, "sft.jsonl"), encoding="utf-8").readlines()[:4])
    (src / "mgsm_en.tsv").write_text("Two apples and one more?\t3\n", "utf-8")
    canned = {p["lang"]: p["answer"] for p in load_sft(os.path.join(SAMPLE, "sft.jsonl"), LANGUAGES)}
    names = {name: code for code, name in LANGUAGE_NAMES.items()}
    monkeypatch.setattr(prepare_sft, "generate_answers", lambda model, tok, prompts, *a: [
        canned[names[p.rsplit("Answer in ", 1)[1].rstrip(".")]] for p in prompts])
    return {
        "sft.py": (sft.main, ["--model", tiny_policy_dir, "--sft_file", str(src / "sft.jsonl"), "--steps", "1",
                              "--batch", "2", "--max_new_tokens", "16"], {"--out_dir": "sft-out"}),
        "calibrate.py": (calibrate.main, ["--parallel", os.path.join(SAMPLE, "parallel.jsonl"), "--encoder",
                                          tiny_encoder_dir, "--n_equiv", "2"], {"--out": "calib.json"}),
        "data/prepare.py": (prepare.main, ["--from_dir", str(src)], {"--out_dir": "prep", "--review": "review.jsonl"}),
        "data/prepare_sft.py": (prepare_sft.main, ["--from_dir", str(src), "--exclude", os.path.join(SAMPLE, "train.jsonl"),
                                                   "--teacher", tiny_policy_dir, "--n", "1"],
                                {"--out": "sft.jsonl", "--review": "sft-review.jsonl"}),
        "data/prepare_mgsm.py": (prepare_mgsm.main, ["--tsv_dir", str(src)], {"--out": "mgsm.jsonl"}),
        "eval.py": (E.main, ["--model", tiny_policy_dir, "--task", "mgsm", "--data", os.path.join(SAMPLE, "eval", "mgsm.jsonl")],
                    {"--out": "results.json"}),
    }


# Each output location a script takes: (script, flag, its value, the user's files planted, the path
# the refusal must name), all relative to tmp_path/work.
PLANTED = [
    ("sft.py", "--out_dir", "run", ["run/ckpt-2/model.safetensors", "run/ckpt-2/config.json", "run/metrics.jsonl",
                                    "run/router.jsonl", "run/calibration.json"], "run"),     # an lrpo.py run
    ("sft.py", "--out_dir", "notes", ["notes/config.json", "notes/model.safetensors", "notes/notes.txt"], "notes"),
    ("sft.py", "--out_dir", "a-file", ["a-file"], "a-file"),
    ("calibrate.py", "--out", "calib.json", ["calib.json"], "calib.json"),
    ("calibrate.py", "--out", "tables", ["tables/mine.json"], "tables"),
    ("data/prepare.py", "--out_dir", "prep", ["prep/train.jsonl"], "prep/train.jsonl"),
    ("data/prepare.py", "--out_dir", "prep", ["prep/val.jsonl"], "prep/val.jsonl"),
    ("data/prepare.py", "--out_dir", "prep", ["prep/review.jsonl"], "prep/review.jsonl"),
    ("data/prepare.py", "--review", "mine.jsonl", ["mine.jsonl"], "mine.jsonl"),
    ("data/prepare_sft.py", "--out", "sft.jsonl", ["sft.jsonl"], "sft.jsonl"),
    ("data/prepare_sft.py", "--out", "sft.jsonl", ["sft.review.jsonl"], "sft.review.jsonl"),  # the default review
    ("data/prepare_sft.py", "--review", "mine.jsonl", ["mine.jsonl"], "mine.jsonl"),
    ("data/prepare_mgsm.py", "--out", "mgsm.jsonl", ["mgsm.jsonl"], "mgsm.jsonl"),
    ("eval.py", "--out", "results.json", ["results.json"], "results.json"),
    ("eval.py", "--out", "folder", ["folder/mine.json"], "folder"),
]


@pytest.mark.parametrize("script, flag, where, files, named", PLANTED)
def test_a_users_file_in_an_output_location_survives(tmp_path, scripts, script, flag, where, files, named):
    main, argv, outputs = scripts[script]
    work = tmp_path / "work"
    for f in files:
        plant(work / f)
    before = snapshot(tmp_path)
    args = {**{k: str(work / v) for k, v in outputs.items()}, flag: str(work / where)}
    if "review" in named and flag != "--review":
        del args["--review"]                                      # the default review file
    said = run_main(main, argv + [a for k, v in args.items() for a in (k, v)])
    assert snapshot(tmp_path) == before, f"{script} {flag} {where}: the tree changed ({said!r})"
    assert f"{work / named}:" in said and "\n" not in said, said


def test_sft_out_dir_dot_never_empties_the_working_directory(tmp_path, scripts, monkeypatch):
    """`sft.py --out_dir .` (the issue's case): refused with or without --overwrite."""
    main, argv, _ = scripts["sft.py"]
    work = tmp_path / "work"
    for f in ("notes.txt", "data/train.jsonl", "config.json", "model.safetensors"):
        plant(work / f)
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    for extra in ([], ["--overwrite"]):
        said = run_main(main, argv + ["--out_dir", ".", *extra])
        assert snapshot(tmp_path) == before, (extra, said)
        assert "not a model directory" in said and "data/" in said, said


def test_overwrite_replaces_a_model_directory(tmp_path, scripts, tiny_policy_dir):
    """--overwrite: an earlier sft.py output (a model directory) is replaced, atomically, and nothing
    is left beside it; without the flag it is refused."""
    from safetensors.torch import load_file
    main, argv, _ = scripts["sft.py"]
    out = tmp_path / "work" / "sft"
    shutil.copytree(tiny_policy_dir, out)
    before = load_file(out / "model.safetensors")
    said = run_main(main, argv + ["--out_dir", str(out)])
    assert "holds a model directory already; pass --overwrite" in said, said
    assert run_main(main, argv + ["--out_dir", str(out), "--overwrite"]) == ""
    after = load_file(out / "model.safetensors")
    assert any(not (before[k] == after[k]).all() for k in before)            # one SFT step moved it
    assert os.listdir(tmp_path / "work") == ["sft"]                          # no temporary left


@pytest.mark.parametrize("script", ["sft.py", "calibrate.py", "data/prepare.py", "data/prepare_sft.py"])
def test_an_unwritable_output_fails_in_the_first_second(tmp_path, scripts, script, monkeypatch):
    """An output under /sys (not writable, even by root): one line, before any model loads."""
    if not _sys_is_read_only():
        pytest.skip("/sys is writable here")
    import checkpoint
    import data.prepare
    import reward
    for module, name in ((checkpoint, "load_policy"), (reward, "Encoder"), (data.prepare, "label_items")):
        monkeypatch.setattr(module, name, _no_model)
    main, argv, outputs = scripts[script]
    args = [a for k, v in outputs.items() for a in (k, f"/sys/lrpo-test/{v}")]
    t0 = time.time()
    said = run_main(main, argv + args)
    assert "cannot write in /sys" in said and "\n" not in said, said
    assert time.time() - t0 < 1.0, time.time() - t0


def _sys_is_read_only() -> bool:
    try:
        os.close(os.open("/sys/.lrpo-probe", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except OSError:
        return True
    os.remove("/sys/.lrpo-probe")
    return False


def _no_model(*args, **kwargs):
    raise AssertionError("a model loaded before the outputs were checked")


# --- the library: data/outputs.py and checkpoint.save_model_dir ------------------------------------

@pytest.fixture(scope="module")
def tiny_model(tiny_policy_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    return model, AutoTokenizer.from_pretrained(tiny_policy_dir), model.state_dict()


def test_save_model_dir_never_removes_what_it_did_not_write(tmp_path, tiny_model):
    """A user's directory at the path is refused (it used to be rmtree'd); a user's `.tmp-NAME`
    beside it (the temporary name it used to clear) is left alone; a model directory is replaced."""
    from checkpoint import CheckpointError, save_model_dir
    plant(tmp_path / "ckpt-3" / "notes.txt")
    plant(tmp_path / ".tmp-ckpt-4" / "notes.txt")
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match=r"ckpt-3: exists and is not a model directory \(it holds notes.txt\)"):
        save_model_dir(str(tmp_path / "ckpt-3"), *tiny_model)
    assert snapshot(tmp_path) == before
    save_model_dir(str(tmp_path / "ckpt-4"), *tiny_model, trainer_state={"step": 4})
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("ckpt-4")} == before
    save_model_dir(str(tmp_path / "ckpt-4"), *tiny_model, trainer_state={"step": 5})   # a model dir: replaced
    import torch
    assert torch.load(tmp_path / "ckpt-4" / "trainer_state.pt")["step"] == 5
    assert sorted(os.listdir(tmp_path)) == [".tmp-ckpt-4", "ckpt-3", "ckpt-4"]


def test_write_dir_failure_leaves_the_old_directory(tmp_path, tiny_model):
    from data.outputs import write_dir
    model, tok, sd = tiny_model
    out = tmp_path / "sft"
    write_dir(str(out), lambda tmp: model.save_pretrained(tmp, state_dict=sd))
    before = snapshot(tmp_path)

    def broken(tmp):
        model.save_pretrained(tmp, state_dict=sd)
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError, match="No space left"):
        write_dir(str(out), broken)
    assert snapshot(tmp_path) == before                                       # old model, no temporary


def test_check_output_file_and_directory_mixups(tmp_path):
    from data.outputs import OutputError, check_output, check_writable
    plant(tmp_path / "a-file")
    (tmp_path / "a-dir").mkdir()
    for call, message in [
        (lambda: check_output(str(tmp_path / "a-file" / "sub" / "x.json")), "a-file is a file, not a directory"),
        (lambda: check_output(str(tmp_path / "a-file"), directory=True), "is a file; a directory is needed"),
        (lambda: check_output(str(tmp_path / "a-dir")), "is a directory; a file is needed"),
        (lambda: check_output(str(tmp_path / "a-file")), "exists; pass --overwrite"),
    ]:
        with pytest.raises(OutputError, match=message):
            call()
    check_output(str(tmp_path / "a-file"), overwrite=True)                    # a file: the user asked
    check_output(str(tmp_path / "a-dir"), directory=True)                     # empty: nothing to lose
    check_output(str(tmp_path / "new" / "deeper" / "out"), directory=True)    # created when written
    check_writable(str(tmp_path), directory=True)                             # a run directory may hold files
    assert sorted(os.listdir(tmp_path)) == ["a-dir", "a-file"]                # the checks leave nothing
