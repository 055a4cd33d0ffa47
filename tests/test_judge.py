"""
judge.py: the published prompts (CARE's three by culture type, the CARE-pro file and its sha256),
verdicts read as SimpleQA's grader reads them and CARE ratings, the verdict cache, and the
OpenAI-compatible client against a real HTTP server on 127.0.0.1 started here (scripted 429s,
500s, a slow reply, malformed JSON, a 400; and one that answers with the tiny model), including a
killed run that resumes without asking a question twice, and eval.py end to end in both modes.
"""
import hashlib
import json
import os
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

import eval as E
import judge as J

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "sample", "eval")
HARMONY = "<|channel|>analysis<|message|>{}<|end|><|start|>assistant<|channel|>final<|message|>{}<|return|>"
TRACE = "The gold target is 1889; the answer says 1889 but in English, so B? No: the question is English, A."
PRO = ("Grade it.\nQuestion: {question}\nGold target: {target}\nPredicted answer: {predicted_answer}\n"
       'Just return the letters "A", "B", "C", or "D", with no text around it.')


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompt.txt"
    path.write_text(PRO, encoding="utf-8")
    return J.load_prompts(care_pro=str(path))


# --- prompts ------------------------------------------------------------------------------------

def test_care_prompts_by_culture_type_and_care_pro_file(tmp_path, prompts, monkeypatch):
    care = prompts["care"]
    assert set(care) == {"Cultural commonsense", "Cultural entities", "Literacy", "Opinion", "Social norms"}
    assert "literary work" in care["Literacy"] and "textual evidence" in care["Literacy"].lower()
    assert care["Cultural commonsense"] is care["Social norms"] and "real-world cultural context" in care["Social norms"]
    assert care["Opinion"] is care["Cultural entities"] and "Depth" in care["Opinion"]
    assert "cherryguo" in open(os.path.join(J.CARE_PROMPT_DIR, "LICENSE"), encoding="utf-8").read()
    item = {"question": "Q?", "gold": "G {x}", "output": "O", "culture_type": "Literacy"}
    text = J.judge_prompt(item, "care", prompts)
    assert text.endswith("## Question: Q?\n## Reference Answer: G {x}\n## Assistant’s response: O")
    assert J.judge_prompt(item, "care_pro", prompts).startswith("Grade it.\nQuestion: Q?\nGold target: G {x}\n")
    pro = prompts["care_pro"]
    assert pro["sha256"] == hashlib.sha256(PRO.encode()).hexdigest() and pro["published"] is False
    monkeypatch.setattr(J, "CARE_PRO_SHA256", pro["sha256"])          # the published file, as far as we know
    assert J.load_prompts(care_pro=pro["path"])["care_pro"]["published"] is True
    with pytest.raises(J.JudgeError, match=r"nope\.txt: cannot read the care_pro judge prompt"):
        J.load_prompts(care_pro=str(tmp_path / "nope.txt"))
    (tmp_path / "bad.txt").write_text("Question: {question}\nAnswer: {answer}")
    with pytest.raises(J.JudgeError, match=r"bad\.txt: .* lacks the placeholder\(s\) \{target\}, \{predicted_answer\}"):
        J.load_prompts(care_pro=str(tmp_path / "bad.txt"))


# --- verdicts ----------------------------------------------------------------------------------

@pytest.mark.parametrize("reply,want", [
    ("A", "CORRECT"), ("B", "CORRECT_BUT_WRONG_LANGUAGE"), ("C. INCORRECT", "INCORRECT"), (" D", "NOT_ATTEMPTED"),
    ("NOT ATTEMPTED", "NOT_ATTEMPTED"), ("NOT_ATTEMPTED", "NOT_ATTEMPTED"), ("CORRECT", "CORRECT"),
    ("CORRECT_BUT_WRONG_LANGUAGE", "CORRECT_BUT_WRONG_LANGUAGE"), ("INCORRECT", "INCORRECT"),
    # SimpleQA's reading: the first capital A-D anywhere, so "Answer: C" is the A of "Answer"
    ("Answer: C", "CORRECT"), ("The grade: B", "CORRECT_BUT_WRONG_LANGUAGE"),
    ("A. CORRECT? No: so C. INCORRECT", "CORRECT"),                     # the first grade stated
    ("incorrect", None), ("the answer is correct", None), ("The grade is unclear", None), ("", None)])
def test_parse_verdict_as_simpleqa(reply, want):
    assert J.parse_verdict(reply) == want


@pytest.mark.parametrize("reply,want", [
    (f"<think>{TRACE}</think>\n\nA", "CORRECT"),                                 # Qwen3 / R1 style
    (f"<think>\n{TRACE}\n</think>\n\n**C**", "INCORRECT"),
    (f"{TRACE}\n</think>\n\nD", "NOT_ATTEMPTED"),                     # the prompt opened the trace
    (f"<think>{TRACE} Final: C", None),                                 # cut off inside the trace
    (HARMONY.format(TRACE, "B"), "CORRECT_BUT_WRONG_LANGUAGE"),                   # gpt-oss
    (HARMONY.format(TRACE, "C. INCORRECT"), "INCORRECT"),
    ("<|channel|>analysis<|message|>" + TRACE, None),                   # no final channel yet
    ("<|channel|>final <|constrain|>json<|message|>{\"grade\": \"D\"}<|return|>", "NOT_ATTEMPTED"),
    (f"analysis{TRACE}assistantfinalA", "CORRECT"),                    # harmony decoded without its tokens
    ("B<|im_end|><|endoftext|>", "CORRECT_BUT_WRONG_LANGUAGE")])
def test_verdict_from_reasoning_replies(reply, want):
    assert J.parse_verdict(J.final_answer(reply)) == want


@pytest.mark.parametrize("reply,want", [
    ("The response names the dish.\nRating: [[7]]", 7), ("Rating: [[10]]", 10), ("[[9]]", 9), ("Rating: 6", 6),
    ('Format: "Rating: [[6]]". Accurate and complete. Rating: [[8]]', 8), ("Rating: [[11]]", None),
    ("Rating: [[0]]", None), ("8/10", None), ("no idea", None), ("Rating: 5, on reflection rating: 7", 7),
    ("<think>Rating: 3? More like 6.</think>Rating: [[6]]", 6), (HARMONY.format("Rating: 2.", "Rating: [[9]]"), 9),
    ("<think>Rating: [[9]]", None)])
def test_parse_rating(reply, want):
    assert J.parse_rating(J.final_answer(reply)) == want


# --- a chat-completions server on 127.0.0.1 ----------------------------------------------------

class Server:
    """ThreadingHTTPServer answering GET /v1/models and POST /v1/chat/completions through
    `answer(messages, attempt) -> (status, body, seconds to wait first)`; counts the requests."""

    def __init__(self, answer, models=("judge",)):
        self.answer, self.models, self.asked, self.lock = answer, models, Counter(), threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body):
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path != "/v1/models":
                    return self.reply(404, {"error": "no such path"})
                self.reply(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                question = re.search(r"Question: (.*)", request["messages"][0]["content"]).group(1)
                with server.lock:
                    server.asked[question] += 1
                    attempt = server.asked[question]
                status, body, wait = server.answer(request, question, attempt)
                time.sleep(wait)
                try:
                    self.reply(status, body)
                except OSError:                                   # the client gave up (timeout)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(content, finish="stop"):
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}]}


@pytest.fixture
def server():
    servers = []
    yield lambda answer, **kw: servers.append(Server(answer, **kw)) or servers[-1]
    for s in servers:
        s.close()


def items_for(questions):
    return [{"question": q, "gold": "g", "output": "o", "lang": "de"} for q in questions]


def test_server_faults_are_retried_or_counted(server, prompts, tmp_path):
    """429 / 500 / 503 / a timeout / malformed JSON are retried; what still fails is counted
    `judge_failed` and not cached; a 400 is not retried; a reply cut by max_tokens is counted."""
    script = {  # question: replies by attempt; the last one repeats
        "q0": [(429, {"error": "busy"}, 0), (200, completion("A"), 0)],
        "q1": [(500, "oops", 0), (503, "", 0), (200, completion("C"), 0)],
        "q2": [(200, completion("A"), 1.0), (200, completion("B"), 0)],           # slow, then fine
        "q3": [(200, "{not json", 0), (200, completion("A"), 0)],                  # malformed JSON
        "q4": [(500, "down", 0)],
        "q5": [(200, {"choices": []}, 0)],                                         # JSON of another shape
        "q6": [(400, {"error": "prompt too long"}, 0)],
        "q7": [(200, completion(None, "length"), 0)]}                              # a trace cut short
    srv = server(lambda req, q, n: script[q][min(n, len(script[q])) - 1])
    judge = J.ServerJudge(srv.url, "judge", max_tokens=64, concurrency=4, timeout=0.3, retries=2, backoff=0.01)
    cache = J.VerdictCache(str(tmp_path / "cache.jsonl"))
    items = items_for(script)
    counts = J.judge_items(items, "care_pro", prompts, judge, cache)
    assert [it["grade"] for it in items] == ["CORRECT", "INCORRECT", "CORRECT_BUT_WRONG_LANGUAGE", "CORRECT",
                                             None, None, None, None]
    assert [it["score"] for it in items] == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert (counts["judge_failed"], counts["judge_unparsed"], counts["judge_cut"]) == (3, 1, 1)
    assert dict(srv.asked) == {"q0": 2, "q1": 3, "q2": 2, "q3": 2, "q4": 3, "q5": 3, "q6": 1, "q7": 1}
    assert items[4]["judge_error"] == "HTTP 500" and items[6]["judge_error"].startswith("HTTP 400")
    assert "malformed reply" in items[5]["judge_error"]
    assert len(cache.records) == 5                                 # the failed three are not cached
    # the next run asks only the three that failed (the server has recovered)
    srv.answer = lambda req, q, n: (200, completion("D"), 0)
    again = items_for(script)
    counts = J.judge_items(again, "care_pro", prompts, judge, J.VerdictCache(cache.path))
    assert (counts["judge_cached"], counts["judge_asked"], counts["judge_failed"]) == (5, 3, 0)
    assert [it["grade"] for it in again][4:7] == ["NOT_ATTEMPTED"] * 3
    assert srv.asked["q4"] == 4 and srv.asked["q0"] == 2


def test_killed_run_resumes_without_asking_twice(server, prompts, tmp_path):
    srv = server(lambda req, q, n: (200, completion("A" if q < "q06" else "C"), 0.01))
    questions = [f"q{i:02d}" for i in range(12)]
    path = str(tmp_path / "results.judge-cache.jsonl")
    # a run stopped after its first 5 verdicts, then killed mid-write of a 6th line
    J.judge_items(items_for(questions[:5]), "care_pro", prompts, J.ServerJudge(srv.url, "judge", 64), J.VerdictCache(path))
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"key": "4f1c", "reply": "A", "cu')
    cache = J.VerdictCache(path)
    assert cache.dropped == 1 and len(cache.records) == 5
    items = items_for(questions)
    counts = J.judge_items(items, "care_pro", prompts, J.ServerJudge(srv.url, "judge", 64, concurrency=3), cache)
    assert (counts["judge_cached"], counts["judge_asked"]) == (5, 7)
    assert srv.asked == Counter({q: 1 for q in questions})                 # every question asked once
    assert [it["score"] for it in items] == [1.0] * 6 + [0.0] * 6
    assert len(J.VerdictCache(path).records) == 12                          # appended after the broken line

    # an interrupt (Ctrl-C) mid-run: every verdict written before it is never asked again
    srv.asked.clear()
    path2 = str(tmp_path / "second.jsonl")

    def stop(n, total):
        if n == 4:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        J.judge_items(items_for(questions), "care_pro", prompts,
                      J.ServerJudge(srv.url, "judge", 64, concurrency=2, progress=stop), J.VerdictCache(path2))
    time.sleep(0.1)                                                         # requests already in flight land
    before, done = Counter(srv.asked), J.VerdictCache(path2)
    assert len(done.records) == 4 and sum(before.values()) <= 4 + 2        # nothing queued was sent
    J.judge_items(items_for(questions), "care_pro", prompts, J.ServerJudge(srv.url, "judge", 64), done)
    assert sum(srv.asked.values()) - sum(before.values()) == 12 - 4        # only the 8 not cached
    assert all(srv.asked[q] >= 1 for q in questions)


def test_probe_unreachable_and_wrong_model(server):
    with socket.socket() as s:                                              # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(J.JudgeError, match=rf"judge server http://127.0.0.1:{port}/v1 does not answer GET /models"):
        J.ServerJudge(f"http://127.0.0.1:{port}/v1", "judge", 8).probe(timeout=2)
    srv = server(lambda *a: (200, completion("A"), 0), models=("openai/gpt-oss-120b",))
    J.ServerJudge(srv.url, "openai/gpt-oss-120b", 8).probe()
    with pytest.raises(J.JudgeError, match=r"serves \['openai/gpt-oss-120b'\], not 'gpt-oss-20b'"):
        J.ServerJudge(srv.url, "gpt-oss-20b", 8).probe()


def test_eval_with_unreachable_server_fails_before_any_model(tmp_path, monkeypatch, tiny_policy_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "prompt.txt").write_text(PRO, encoding="utf-8")
    monkeypatch.setattr(E, "load_model", lambda *a: pytest.fail("a model loaded before the probe"))
    with pytest.raises(J.JudgeError, match="does not answer GET /models") as e:
        E.main(["--model", tiny_policy_dir, "--suite", os.path.join(SAMPLE, "suite.json"), "--judge", "judge",
                "--judge_url", f"http://127.0.0.1:{port}/v1", "--judge_prompt", f"care_pro={tmp_path / 'prompt.txt'}",
                "--out", str(tmp_path / "r.json")])
    assert "\n" not in str(e.value)
    with pytest.raises(E.RecordError, match=r"CARE-pro is graded with the authors' prompt.*--judge_prompt care_pro"):
        E.main(["--model", tiny_policy_dir, "--suite", os.path.join(SAMPLE, "suite.json"), "--judge", "judge",
                "--judge_url", f"http://127.0.0.1:{port}/v1", "--out", str(tmp_path / "r.json")])


def test_eval_judge_in_process_and_through_a_server_agree(server, tiny, tmp_path):
    """The tiny model as judge, in this process and behind a chat-completions server answering
    with the same greedy generation: the same replies, grades and scores; a rerun of the server
    run is answered from its cache."""
    model, tok = tiny
    lock = threading.Lock()

    def answer(request, question, attempt):
        with lock:
            (text,), (cut,) = E.generate(model, tok, [E.chat(tok, request["messages"][0]["content"])],
                                         request["max_tokens"], 1, show=False)
        return 200, completion(text, "length" if cut else "stop"), 0
    srv = server(answer, models=("tiny-judge",))
    (tmp_path / "prompt.txt").write_text(PRO, encoding="utf-8")
    common = ["--model", tiny.path, "--suite", os.path.join(SAMPLE, "suite.json"), "--max_new_tokens", "4",
              "--batch_size", "1", "--judge_max_new_tokens", "6", "--judge_prompt", f"care_pro={tmp_path / 'prompt.txt'}"]
    E.main(common + ["--judge", tiny.path, "--out", str(tmp_path / "local.json")])
    E.main(common + ["--judge", "tiny-judge", "--judge_url", srv.url, "--out", str(tmp_path / "served.json")])
    local, served = (json.loads((tmp_path / f).read_text(encoding="utf-8"))["tasks"][:2]
                     for f in ("local.json", "served.json"))
    assert sum(srv.asked.values()) == 30 and max(srv.asked.values()) == 1
    for a, b in zip(local, served):
        assert a["label"] == b["label"] and a["scores"] == b["scores"]
        assert [J.final_answer(it["judge_reply"], tok.all_special_tokens) for it in a["items"]] == \
               [it["judge_reply"] for it in b["items"]]
        assert [it["grade"] for it in a["items"]] == [it["grade"] for it in b["items"]]
    E.main(common + ["--judge", "tiny-judge", "--judge_url", srv.url, "--out", str(tmp_path / "served.json"),
                     "--overwrite"])
    assert sum(srv.asked.values()) == 30                                    # all 30 from the cache
    again = json.loads((tmp_path / "served.json").read_text(encoding="utf-8"))["tasks"][:2]
    assert [t["counters"]["judge_cached"] for t in again] == [15, 15] and again[0]["scores"] == served[0]["scores"]


class Tiny(tuple):
    path: str


@pytest.fixture(scope="module")
def tiny(tiny_policy_dir):
    t = Tiny(E.load_model(tiny_policy_dir, torch.device("cpu")))
    t.path = tiny_policy_dir
    return t
