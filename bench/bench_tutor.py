"""Benchmark: the tutor (`chat`) and exam generation with the OpenAI provider, against the same LLM calls made
directly, on a local fake OpenAI-compatible server whose replies come after a fixed delay.

    python bench/bench_tutor.py [--chat-rounds 40] [--exam-rounds 7] [--chat-delay-ms 150]
                                [--moderation-delay-ms 50] [--mcq 4] [--theory 2] [--json]

Setup (bench/rag_env.py, all on 127.0.0.1): a 4-page lecture PDF on hash tables uploaded through `ingest` into
faculty 1 / semester 1 and ingested by RQ; `LLM_PROVIDER=openai` with `OPENAI_BASE_URL` pointing at
`tests/fakes/openai_server.py`'s `FakeOpenAIServer` (loaded by path, in this process), `OPENAI_MAX_RETRIES=0`,
`CHAT_CACHE_SECONDS=0` (no answer cache) and `SEARCH_CACHE_SECONDS=0` (every turn embeds and searches). The
fake answers every chat completion after `--chat-delay-ms` from a handler that builds a valid reply from the
request's JSON schema (tutor answers cite S1; exam items use the schema's source-id enum, 4 distinct options;
item verdicts are `supported: true`), and every moderation after `--moderation-delay-ms`, not flagged.

1. chat: `POST /chat` as the placed student over real HTTP (the gateway served by uvicorn in this process, one
   keep-alive httpx client), a new session every request (hint level 0, no history), 8 grounded questions in
   turn. Anchors in the same run, interleaved round by round (ABBA): the exact chat-completion request the
   provider sent for that question (recorded by the fake) replayed with `http.client` on a keep-alive
   connection ("direct LLM call"); the recorded moderation request replayed the same way; and
   `aiteacher.curriculum.search.retrieve` in-process for the same question (embed + vector search). Goal:
   chat <= 1.1x the direct call plus retrieval and moderation, i.e. (chat - retrieve - moderation) / direct
   <= 1.1 (p50s, the difference taken round by round). The raw ratio chat / direct is printed too.
2. exam: `POST /generate` (num_mcq, num_theory) then `aiteacher.queue.run_burst()` (the `generate_exam` job
   and the notification it queues) until the exam reads `ready` with every question. Anchor: the job's
   chat-completion requests (one `exam_items`, one `item_verdict` per item; recorded on a warm-up exam)
   replayed one after the other with `http.client`, summed. Goal: end-to-end <= 1.1x that sum. The job
   alone (`generate_exam`, timed inside `run_burst`) is reported against the same anchor.

The provider's `moderate`, `tutor_answer` and `_complete`, `retrieve`, `chat_turn`, the tutor's DB helpers and
`generate_exam` are also timed inside the requests and the job, to attribute the overhead; the same chat request
is also replayed with the openai SDK and through `provider._complete` in-process (information). Every round
checks that the request bodies the provider sent are the ones replayed. The fake's connections get TCP_NODELAY
(see `install_handlers`): without it every reply waits ~20-40 ms for a delayed ACK.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import sys
import time
from datetime import date
from typing import Any

from common import Timings, load_module, percentile, print_table
from rag_env import HIGH_LIMITS, RagEnv, text_pdf_builder

GOAL = 1.1
LECTURE = [
    [
        "Week 4: Hash tables.",
        "A hash table stores key-value pairs in an array of buckets.",
        "A hash function maps each key to a bucket index, so a lookup inspects one bucket instead of every entry.",
        "When two different keys map to the same bucket we have a collision, and the table must resolve it.",
    ],
    [
        "Collision resolution.",
        "Separate chaining keeps a linked list of entries in every bucket; a colliding key is appended to the list.",
        "Open addressing stores every entry in the bucket array itself and probes other buckets until it finds",
        "an empty slot. Linear probing checks the next bucket, which causes primary clustering: long runs of",
        "occupied buckets that make later insertions and lookups slower.",
    ],
    [
        "Load factor and resizing.",
        "The load factor is the number of entries divided by the number of buckets.",
        "When the load factor exceeds a threshold such as 0.75, the table doubles its size and rehashes every key,",
        "because each key's bucket index depends on the number of buckets.",
    ],
    [
        "Choosing a hash function.",
        "A good hash function spreads keys uniformly over the buckets and is fast to compute.",
        "Keys that are equal must hash to the same value; a poor function that sends many keys to a few buckets",
        "turns constant-time operations into linear scans.",
    ],
]
QUESTIONS = [
    "What happens in open addressing when a bucket is taken?",
    "What is the load factor of a hash table?",
    "How does separate chaining handle collisions?",
    "What does a hash function do with a key?",
    "Why does linear probing cause primary clustering?",
    "When does a hash table double its size and rehash its keys?",
    "What is a collision in a hash table?",
    "What makes a good hash function for a table?",
]
MCQ_QUESTIONS = [
    "Which structure does separate chaining keep in every bucket?",
    "What does a hash function compute from a key?",
    "At what load factor threshold does the lecture's table grow?",
    "Which probing scheme produces primary clustering?",
    "How is the load factor defined?",
    "What occurs when two different keys land in one bucket?",
    "Where does open addressing store its entries?",
    "Why must every key be rehashed after resizing?",
]
THEORY_QUESTIONS = [
    "Explain how open addressing finds room for a new entry.",
    "Compare separate chaining with linear probing in terms of clustering.",
    "Describe why a poor hash function slows a table down.",
    "Discuss what the load factor tells us about a table's performance.",
]
OPTIONS = ["A linked list of entries", "A sorted array of keys", "A binary heap of values", "A second hash table"]


# --- the fake LLM ----------------------------------------------------------------------------------


def load_fake() -> Any:
    return load_module("tests/fakes/openai_server.py", "bench_fake_openai")


def reply_for(body: dict[str, Any]) -> Any:
    """A valid structured reply for the request's JSON schema (None when the schema is not one we know)."""
    json_schema = body["response_format"]["json_schema"]
    name, schema = json_schema["name"], json_schema["schema"]
    if name == "tutor_answer":
        ids = schema["properties"]["citations"]["items"]["enum"]
        return {
            "answer": f"Think about what the lecture says about buckets [{ids[0]}]. What would happen to the next key?",
            "citations": [ids[0]],
        }
    if name == "exam_items":
        ids = schema["properties"]["mcq"]["items"]["properties"]["source_id"]["enum"]
        user = body["messages"][-1]["content"]
        match = re.search(r"<request>\n(.*?)\n</request>", user, re.DOTALL)
        wanted = json.loads(match.group(1)) if match else {}
        mcq = [
            {
                "question": MCQ_QUESTIONS[i % len(MCQ_QUESTIONS)],
                "options": OPTIONS,
                "answer_index": 0,
                "explanation": "The lecture says so on this page.",
                "source_id": ids[i % len(ids)],
            }
            for i in range(int(wanted.get("multiple_choice_items", 0)))
        ]
        theory = [
            {
                "question": THEORY_QUESTIONS[i % len(THEORY_QUESTIONS)],
                "model_answer": "As the lecture explains, with the reasons it gives.",
                "rubric": ["States the mechanism", "Gives the consequence"],
                "source_id": ids[i % len(ids)],
            }
            for i in range(int(wanted.get("theory_items", 0)))
        ]
        return {"mcq": mcq, "theory": theory}
    if name == "item_verdict":
        return {"supported": True, "reason": "The quoted source states the marked answer."}
    if name == "learning_state":
        return {"topics": ["hash tables"], "misconceptions": [], "next_steps": []}
    return None


def install_handlers(fake_module: Any, fake: Any, chat_delay: float, moderation_delay: float) -> None:
    def chat(request: Any) -> Any:
        payload = reply_for(request.body) if isinstance(request.body, dict) else None
        if payload is None:
            return fake_module.FakeResponse(
                500, fake_module.error_body("bench fake: unknown schema"), {"x-should-retry": "false"}
            )
        return fake_module.FakeResponse(200, fake_module.chat_completion(json.dumps(payload)), delay=chat_delay)

    def moderations(_: Any) -> Any:
        return fake_module.FakeResponse(200, fake_module.moderation_result(False), delay=moderation_delay)

    fake.handlers["chat"] = chat
    fake.handlers["moderations"] = moderations


class Direct:
    """The anchor's client: one keep-alive `http.client` connection to the fake, JSON in and out."""

    def __init__(self, port: int) -> None:
        self.paths = {"chat": "/v1/chat/completions", "moderations": "/v1/moderations"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {
            "Content-Type": "application/json",
            "Authorization": "Bearer sk-bench",
            "Connection": "keep-alive",
        }

    def call(self, endpoint: str, body: dict[str, Any]) -> float:
        """Milliseconds from sending `body` to the decoded JSON reply."""
        raw = json.dumps(body).encode()
        began = time.perf_counter()
        self.conn.request("POST", self.paths[endpoint], body=raw, headers=self.headers)
        response = self.conn.getresponse()
        reply = json.loads(response.read())
        elapsed = (time.perf_counter() - began) * 1000
        if response.status != 200:
            raise RuntimeError(f"direct {endpoint}: {response.status} {reply}")
        return elapsed

    def close(self) -> None:
        self.conn.close()


def stats(values: list[float]) -> dict[str, float]:
    return {
        "p50": statistics.median(values),
        "p95": percentile(values, 0.95),
        "mean": statistics.fmean(values),
        "n": len(values),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chat-rounds", type=int, default=40)
    parser.add_argument("--exam-rounds", type=int, default=7)
    parser.add_argument("--chat-delay-ms", type=float, default=150.0, help="the fake's delay per chat completion")
    parser.add_argument("--moderation-delay-ms", type=float, default=50.0, help="the fake's delay per moderation")
    parser.add_argument("--mcq", type=int, default=4)
    parser.add_argument("--theory", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    say = (lambda *a, **k: None) if args.json else print
    began = time.perf_counter()

    import httpx

    fake_module = load_fake()
    limits = {**HIGH_LIMITS, **dict.fromkeys(("chat", "exam-generate", "exam"), "1000000/60")}
    with fake_module.FakeOpenAIServer() as fake:
        install_handlers(fake_module, fake, args.chat_delay_ms / 1000, args.moderation_delay_ms / 1000)
        extra_env = {
            "LLM_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": fake.url,
            "OPENAI_MAX_RETRIES": "0",
            "CHAT_CACHE_SECONDS": "0",
            "SEARCH_CACHE_SECONDS": "0",
            "RATE_LIMITS": json.dumps(limits),
        }
        with RagEnv(extra_env=extra_env, prefix="bench-tutor-") as env:
            import aiteacher.curriculum.search as search_module
            import aiteacher.exams.jobs as exam_jobs
            import aiteacher.tutor.service as tutor_service
            from aiteacher.config import get_settings
            from aiteacher.curriculum.search import Scope
            from aiteacher.llm import get_llm
            from aiteacher.queue import run_burst

            settings = get_settings()
            assert settings.chat_cache_seconds == 0 and settings.search_cache_seconds == 0
            provider = get_llm()
            if provider.name != "openai":
                raise SystemExit(f"expected the OpenAI provider, got {provider.name!r}")

            t0 = time.perf_counter()
            document = env.upload(text_pdf_builder()(LECTURE, title="Hash tables"), "hash-tables.pdf", course="hashing")
            env.run_jobs()
            status = env.document(document["document_id"])["status"]
            if status != "ready":
                raise SystemExit(f"the lecture PDF is {status}, not ready")
            say(
                f"lecture: {len(LECTURE)} pages ingested in {time.perf_counter() - t0:.1f} s; fake LLM at "
                f"{fake.url}: chat {args.chat_delay_ms:g} ms, moderation {args.moderation_delay_ms:g} ms"
            )

            student = env.student
            assert student is not None and student.faculty_id is not None
            scope = Scope(student.faculty_id, student.semester_id, None)
            top_k = settings.tutor_top_k
            direct = Direct(fake.port)
            import openai

            sdk = openai.OpenAI(api_key="sk-bench", base_url=fake.url, max_retries=0, timeout=60)
            timing = Timings()

            with env.live() as base, httpx.Client(base_url=base, headers=student.headers, timeout=120) as http:

                def recorded_since(mark: int, endpoint: str) -> list[dict[str, Any]]:
                    return [r.body for r in fake.requests[mark:] if r.endpoint == endpoint]

                def chat_request(question: str) -> tuple[float, dict[str, Any], dict[str, Any]]:
                    mark = len(fake.requests)
                    t = time.perf_counter()
                    response = http.post("/chat", json={"message": question})
                    elapsed = (time.perf_counter() - t) * 1000
                    if response.status_code != 200:
                        raise RuntimeError(f"chat: {response.status_code} {response.text[:300]}")
                    reply = response.json()
                    if reply["refused"] or not reply["citations"] or reply["hint_level"] != 0:
                        raise RuntimeError(f"chat was not a grounded first-hint answer: {reply}")
                    chats, moderations = recorded_since(mark, "chat"), recorded_since(mark, "moderations")
                    if len(chats) != 1 or len(moderations) != 1:
                        raise RuntimeError(
                            f"expected 1 chat + 1 moderation call, got {len(chats)} + {len(moderations)}"
                        )
                    return elapsed, chats[0], moderations[0]

                def exam_request() -> tuple[float, list[dict[str, Any]]]:
                    mark = len(fake.requests)
                    t = time.perf_counter()
                    response = http.post("/generate", json={"num_mcq": args.mcq, "num_theory": args.theory})
                    if response.status_code != 202:
                        raise RuntimeError(f"generate: {response.status_code} {response.text[:300]}")
                    timing.sink.setdefault("post", []).append((time.perf_counter() - t) * 1000)
                    run_burst()
                    elapsed = (time.perf_counter() - t) * 1000
                    exam = http.get(f"/exams/{response.json()['exam_id']}").json()
                    if exam["status"] != "ready" or len(exam["questions"]) != args.mcq + args.theory:
                        raise RuntimeError(
                            f"exam {exam['status']} with {len(exam['questions'])} questions: {exam.get('error')}"
                        )
                    return elapsed, recorded_since(mark, "chat")

                # Warm-up: model, server, connections; record each question's requests (deterministic: a new
                # session, hint level 0, the same passages) and one exam's requests.
                chat_bodies: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
                for question in QUESTIONS:
                    for _ in range(2):
                        _, chat_body, moderation_body = chat_request(question)
                    chat_bodies[question] = (chat_body, moderation_body)
                    direct.call("chat", chat_body)
                    direct.call("moderations", moderation_body)
                    search_module.retrieve(scope, question, top_k)
                _, exam_bodies = exam_request()
                names = [body["response_format"]["json_schema"]["name"] for body in exam_bodies]
                say(
                    f"exam: {len(exam_bodies)} LLM calls per job ({', '.join(sorted(set(names)))}); "
                    f"{len(QUESTIONS)} chat questions"
                )

                timing.wrap(search_module, "retrieve", "retrieve")
                timing.wrap(provider, "moderate", "moderate")
                timing.wrap(provider, "_complete", "complete")
                timing.wrap(provider, "tutor_answer", "tutor_answer")
                timing.wrap(tutor_service, "chat_turn", "chat_turn")
                for function in ("open_session", "_recent_messages", "_record"):
                    timing.wrap(tutor_service, function, "db")
                timing.wrap(search_module, "caller_scope", "db")
                timing.wrap(exam_jobs, "generate_exam", "generate_exam")

                series: dict[str, list[float]] = {
                    name: []
                    for name in (
                        "chat",
                        "direct",
                        "sdk",
                        "provider",
                        "moderation",
                        "retrieve",
                        "adjusted",
                        "in_chat_turn",
                        "in_retrieve",
                        "in_moderate",
                        "in_tutor_answer",
                        "in_complete",
                        "in_db",
                        "in_rest",
                        "exam",
                        "exam_direct",
                        "exam_post",
                        "exam_job",
                        "exam_llm",
                        "exam_retrieve",
                    )
                }
                mismatches = 0

                def run_chat(question: str) -> None:
                    nonlocal mismatches
                    timing.sink = {}
                    ms, chat_body, moderation_body = chat_request(question)
                    mismatches += (chat_body, moderation_body) != chat_bodies[question]
                    series["chat"].append(ms)
                    series["in_chat_turn"].append(timing.total("chat_turn"))
                    series["in_retrieve"].append(timing.total("retrieve"))
                    series["in_moderate"].append(timing.total("moderate"))
                    series["in_complete"].append(timing.total("complete"))
                    series["in_tutor_answer"].append(timing.total("tutor_answer"))
                    series["in_db"].append(timing.total("db"))
                    series["in_rest"].append(
                        timing.total("chat_turn")
                        - timing.total("moderate")
                        - timing.total("retrieve")
                        - timing.total("tutor_answer")
                        - timing.total("db")
                    )

                def run_direct(question: str) -> None:
                    series["direct"].append(direct.call("chat", chat_bodies[question][0]))

                def run_moderation(question: str) -> None:
                    series["moderation"].append(direct.call("moderations", chat_bodies[question][1]))

                def run_retrieve(question: str) -> None:
                    t = time.perf_counter()
                    search_module.retrieve(scope, question, top_k)
                    series["retrieve"].append((time.perf_counter() - t) * 1000)

                def run_sdk(question: str) -> None:
                    t = time.perf_counter()
                    sdk.chat.completions.create(**chat_bodies[question][0])
                    series["sdk"].append((time.perf_counter() - t) * 1000)

                def run_provider(question: str) -> None:
                    body = chat_bodies[question][0]
                    timing.sink = {}
                    provider._complete(body["messages"], body["response_format"], "tutor_answer")
                    series["provider"].append(timing.total("complete"))

                def run_exam() -> None:
                    nonlocal mismatches
                    timing.sink = {}
                    ms, bodies = exam_request()
                    mismatches += bodies != exam_bodies
                    series["exam"].append(ms)
                    series["exam_post"].append(timing.total("post"))
                    series["exam_job"].append(timing.total("generate_exam"))
                    series["exam_llm"].append(timing.total("complete"))
                    series["exam_retrieve"].append(timing.total("retrieve"))

                def run_exam_direct() -> None:
                    series["exam_direct"].append(sum(direct.call("chat", body) for body in exam_bodies))

                try:
                    chat_steps = [run_chat, run_direct, run_moderation, run_retrieve, run_sdk, run_provider]
                    for index in range(args.chat_rounds):
                        question = QUESTIONS[index % len(QUESTIONS)]
                        for step in chat_steps if index % 2 == 0 else chat_steps[::-1]:
                            step(question)
                        series["adjusted"].append(
                            series["chat"][-1] - series["retrieve"][-1] - series["moderation"][-1]
                        )
                    exam_steps = [run_exam, run_exam_direct]
                    for index in range(args.exam_rounds):
                        for exam_step in exam_steps if index % 2 == 0 else exam_steps[::-1]:
                            exam_step()
                finally:
                    timing.remove()
                    direct.close()
                    sdk.close()

    s = {name: stats(values) for name, values in series.items() if values}
    chat_raw = s["chat"]["p50"] / s["direct"]["p50"]
    chat_adjusted = s["adjusted"]["p50"] / s["direct"]["p50"]
    exam_ratio = s["exam"]["p50"] / s["exam_direct"]["p50"]
    job_ratio = s["exam_job"]["p50"] / s["exam_direct"]["p50"]
    chat_met, exam_met = chat_adjusted <= GOAL, exam_ratio <= GOAL

    if not args.json:
        print()
        labels = {
            "chat": "POST /chat (HTTP, new session)",
            "in_chat_turn": "  in it: chat_turn()",
            "in_moderate": "    provider.moderate()",
            "in_retrieve": "    retrieve()",
            "in_tutor_answer": "    provider.tutor_answer()",
            "in_complete": "      provider._complete() (chat completion)",
            "in_db": "    session, scope, history, record (DB)",
            "in_rest": "    the rest of chat_turn()",
            "direct": "direct LLM call, http.client (anchor)",
            "sdk": "direct LLM call, openai SDK (information)",
            "provider": "provider._complete() in-process (information)",
            "moderation": "direct moderation call, http.client",
            "retrieve": "retrieve() in-process (same question)",
            "adjusted": "chat - retrieve - moderation (per round)",
            "exam": "POST /generate + run_burst -> ready",
            "exam_post": "  in it: POST /generate (202)",
            "exam_job": "  in it: generate_exam()",
            "exam_llm": "    provider._complete() calls, sum",
            "exam_retrieve": "    retrieve()",
            "exam_direct": "the job's LLM calls direct, sum (anchor)",
        }
        print_table(
            ["ms", "n", "p50", "p95", "mean"],
            [
                [labels[k], s[k]["n"], f"{s[k]['p50']:.1f}", f"{s[k]['p95']:.1f}", f"{s[k]['mean']:.1f}"]
                for k in labels
                if k in s
            ],
        )
        print()
        print(f"chat p50 / direct p50 (raw)                          {chat_raw:6.3f}x  (information)")
        print(
            f"(chat - retrieve - moderation) p50 / direct p50      {chat_adjusted:6.3f}x  (goal <= {GOAL}x: "
            f"{'met' if chat_met else 'NOT met'})"
        )
        print(
            f"exam end-to-end p50 / direct LLM calls p50           {exam_ratio:6.3f}x  (goal <= {GOAL}x: "
            f"{'met' if exam_met else 'NOT met'})"
        )
        print(f"generate_exam() p50 / direct LLM calls p50           {job_ratio:6.3f}x  (information)")
        if mismatches:
            print(f"warning: {mismatches} rounds sent other request bodies than the ones replayed")

    result = {
        "bench": "tutor",
        "date": date.today().isoformat(),
        "chat_delay_ms": args.chat_delay_ms,
        "moderation_delay_ms": args.moderation_delay_ms,
        "exam_items": {"mcq": args.mcq, "theory": args.theory},
        "exam_llm_calls": len(exam_bodies),
        **{f"{k}_p50_ms": round(v["p50"], 2) for k, v in s.items()},
        **{f"{k}_p95_ms": round(v["p95"], 2) for k, v in s.items()},
        "chat_n": s["chat"]["n"],
        "exam_n": s["exam"]["n"],
        "body_mismatches": mismatches,
        "chat_over_direct_raw": round(chat_raw, 3),
        "chat_minus_retrieval_moderation_over_direct": round(chat_adjusted, 3),
        "exam_over_direct": round(exam_ratio, 3),
        "exam_job_over_direct": round(job_ratio, 3),
        "goal_ratio_max": GOAL,
        "chat_met": chat_met,
        "exam_met": exam_met,
        "met": chat_met and exam_met and not mismatches,
        "bench_wall_s": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
