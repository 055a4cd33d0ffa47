"""The README's recipe commands are valid commands: every flag parses and passes the settings checks
(they then stop at the first input this checkout lacks: the data or the model), and a tag without a
warm start is warned about."""
import json
import os
import re
import runpy
import shlex
import sys

import pytest

from conftest import ROOT

README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
RECIPES = re.findall(r"`torchrun --standalone --nproc_per_node=8 ((?:lrpo|sft)\.py [^`]+)`", README)


def run_script(monkeypatch, capsys, argv: list[str]) -> tuple[object, str]:
    """Run a script in this process; -> (its SystemExit code, stdout + stderr)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(argv[0], run_name="__main__")
    out = capsys.readouterr()
    return stop.value.code, out.out + out.err


def test_the_readme_has_the_papers_recipes():
    assert len(RECIPES) == 5, RECIPES                            # LRPO (two readings), LRPO-Zero, GRPO, SFT alone
    for figure in ("32.15", "30.44", "30.42", "30.39", "28.64", "38.25", "32.95", "32.33"):
        assert figure in README, figure                         # Table 5, beside the commands


@pytest.mark.parametrize("command", RECIPES)
def test_recipe_flags_parse_and_pass_the_checks(monkeypatch, capsys, tmp_path, command):
    argv = shlex.split(command)
    argv = [a if not a.startswith("out/") else str(tmp_path / a) for a in argv]    # never write into out/
    code, said = run_script(monkeypatch, capsys, argv)
    assert code != 2 and "usage:" not in said, said[-2000:]      # 2 = argparse or a settings check
    assert any(s in said + str(code) for s in ("data/train.jsonl", "data/sft.jsonl", "Qwen/Qwen2.5-1.5B-Instruct")), \
        f"stopped somewhere unexpected: {code} {said[-2000:]}"


def test_a_tag_without_a_warm_start_is_warned_about(monkeypatch, capsys, tmp_path):
    code, said = run_script(monkeypatch, capsys, ["lrpo.py", "--tiny", "--sft_steps", "0", "--prompts_per_step",
                                                  "1000", "--out_dir", str(tmp_path / "out")])
    assert "warning: --lang_prompt tag without a warm start" in said and "fewer than --prompts_per_step" in str(code)
    code, said = run_script(monkeypatch, capsys, ["lrpo.py", "--tiny", "--sft_steps", "0", "--lang_prompt", "system",
                                                  "--prompts_per_step", "1000", "--out_dir", str(tmp_path / "out")])
    assert "warning" not in said


def test_warm_start_must_be_disjoint_from_the_rl_data(monkeypatch, capsys, tmp_path):
    sft = tmp_path / "sft.jsonl"
    train = open(os.path.join(ROOT, "data", "sample", "train.jsonl"), encoding="utf-8").readline()
    q = json.loads(train)["question"]
    sft.write_text(json.dumps({"id": "s1", "question": "  " + q.upper() + " ", "lang": "de", "answer": "Ja."}) + "\n")
    code, _ = run_script(monkeypatch, capsys, ["lrpo.py", "--tiny", "--sft_file", str(sft), "--out_dir", str(tmp_path / "o")])
    assert "shares 1 question(s) with data/sample/train.jsonl" in str(code) and "paper §5.4" in str(code)
