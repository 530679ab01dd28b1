"""A fake OpenAI-compatible HTTP server for tests: real HTTP on 127.0.0.1, no mocks of the client.

It records every request (method, path, headers, JSON body) and answers from programmable queues, one
per endpoint (`chat`, `embeddings`, `moderations`), each entry a `FakeResponse` (status, JSON body, extra
headers, delay before answering). When an endpoint's queue is empty it uses the endpoint's handler if one
is set (`fake.handlers["chat"] = fn`), else a default: deterministic vectors for embeddings, "not
flagged" for moderations, and a 500 with `x-should-retry: false` for chat (a test that forgot to queue
a reply fails loudly instead of hanging in retries).

Usage::

    with FakeOpenAIServer() as fake:
        fake.queue_chat_json({"answer": "...", "citations": ["S1"]})
        provider = OpenAIProvider(model="gpt-test", api_key="sk-test", base_url=fake.url)
        ...
        assert fake.requests[0].body["model"] == "gpt-test"

or the `fake_openai` fixture: `from tests.fakes import fake_openai_fixture  # noqa: F401`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/embeddings": "embeddings", "/v1/moderations": "moderations"}
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-case header names."""
    body: Any
    """The decoded JSON body (None when there was none; the raw text when it was not JSON)."""

    @property
    def endpoint(self) -> str | None:
        return ENDPOINTS.get(self.path.split("?", 1)[0])

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []


@dataclass
class FakeResponse:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (longer than the client's timeout simulates a hung server)."""
    stream: list[str] | None = None
    """Chat deltas of a streamed completion (`stream: true`): one server-sent `chat.completion.chunk` each."""
    hold_after_first: threading.Event | None = None
    """A streamed reply waits (at most 30 s) for this event after its first chunk, so a test can read before
    the model has finished."""
    finished: threading.Event | None = None
    """Set once the last chunk of a streamed reply was written."""


Handler = Callable[[RecordedRequest], FakeResponse]


# --- response bodies -------------------------------------------------------------------------------
def chat_completion(
    content: str | None, *, model: str = "gpt-test", finish_reason: str = "stop", refusal: str | None = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def moderation_result(
    flagged: bool, categories: list[str] | tuple[str, ...] = (), model: str = "omni-moderation-latest"
) -> dict[str, Any]:
    return {
        "id": "modr-fake",
        "model": model,
        "results": [
            {
                "flagged": flagged,
                "categories": {name: name in categories for name in MODERATION_CATEGORIES},
                "category_scores": {name: 0.9 if name in categories else 0.01 for name in MODERATION_CATEGORIES},
                "category_applied_input_types": {name: ["text"] for name in MODERATION_CATEGORIES},
            }
        ],
    }


def error_body(message: str, kind: str = "server_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def embedding_vector(text: str, size: int = 8) -> list[float]:
    """A deterministic, text-dependent vector (not unit length: clients must normalize)."""
    vector = [0.0] * size
    for index, char in enumerate(text.encode()):
        vector[index % size] += (char % 31) / 31.0
    vector[0] += 1.0
    return vector


# --- the server ------------------------------------------------------------------------------------
class FakeOpenAIServer:
    def __init__(self, *, embedding_size: int = 8) -> None:
        self.embedding_size = embedding_size
        self.requests: list[RecordedRequest] = []
        self.handlers: dict[str, Handler] = {}
        self._queues: dict[str, deque[FakeResponse]] = {name: deque() for name in ENDPOINTS.values()}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        fake = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two sends: without TCP_NODELAY the body waits for the client's
            # delayed ACK (~40 ms), which no real server does and which would distort timings.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake server is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL to give the client (`OPENAI_BASE_URL`)."""
        return f"http://127.0.0.1:{self.port}/v1"

    # --- programming replies -----------------------------------------------------------------------
    def queue(self, endpoint: str, response: FakeResponse) -> None:
        if endpoint not in self._queues:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {sorted(self._queues)}")
        with self._lock:
            self._queues[endpoint].append(response)

    def queue_chat(self, content: str | None, *, delay: float = 0.0, **kwargs: Any) -> None:
        self.queue("chat", FakeResponse(200, chat_completion(content, **kwargs), delay=delay))

    def queue_chat_stream(
        self,
        pieces: list[str],
        *,
        hold_after_first: threading.Event | None = None,
        finished: threading.Event | None = None,
        delay: float = 0.0,
    ) -> None:
        self.queue(
            "chat",
            FakeResponse(
                200, None, delay=delay, stream=list(pieces), hold_after_first=hold_after_first, finished=finished
            ),
        )

    def queue_chat_json(self, payload: Any, *, delay: float = 0.0) -> None:
        self.queue_chat(json.dumps(payload), delay=delay)

    def queue_error(
        self,
        endpoint: str,
        status: int,
        *,
        message: str = "fake failure",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        kind = "rate_limit_exceeded" if status == 429 else "server_error"
        self.queue(endpoint, FakeResponse(status, error_body(message, kind), dict(headers or {}), delay))

    def queue_moderation(self, flagged: bool, categories: list[str] | tuple[str, ...] = ()) -> None:
        self.queue("moderations", FakeResponse(200, moderation_result(flagged, categories)))

    def pending(self, endpoint: str) -> int:
        with self._lock:
            return len(self._queues[endpoint])

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.endpoint == endpoint]

    # --- serving -----------------------------------------------------------------------------------
    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        length = int(http.headers.get("Content-Length") or 0)
        raw = http.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        request = RecordedRequest(
            method=http.command,
            path=http.path,
            headers={name.lower(): value for name, value in http.headers.items()},
            body=body,
        )
        with self._lock:
            self.requests.append(request)
            endpoint = request.endpoint
            queued = self._queues[endpoint].popleft() if endpoint and self._queues[endpoint] else None
        response = queued or self._default(request)
        if response.delay:
            time.sleep(response.delay)
        self._reply(http, response)

    def _default(self, request: RecordedRequest) -> FakeResponse:
        endpoint = request.endpoint
        if endpoint is None:
            return FakeResponse(404, error_body(f"no such route {request.path}", "invalid_request_error"))
        handler = self.handlers.get(endpoint)
        if handler is not None:
            return handler(request)
        if endpoint == "embeddings":
            inputs = request.body.get("input", []) if isinstance(request.body, dict) else []
            inputs = [inputs] if isinstance(inputs, str) else inputs
            data = [
                {"object": "embedding", "index": index, "embedding": embedding_vector(text, self.embedding_size)}
                for index, text in enumerate(inputs)
            ]
            return FakeResponse(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": request.body.get("model", ""),
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                },
            )
        if endpoint == "moderations":
            return FakeResponse(200, moderation_result(False))
        return FakeResponse(500, error_body("fake server: no chat reply queued"), {"x-should-retry": "false"})

    @staticmethod
    def _reply(http: BaseHTTPRequestHandler, response: FakeResponse) -> None:
        if response.stream is not None:
            FakeOpenAIServer._stream(http, response)
            return
        raw = json.dumps(response.body).encode() if response.body is not None else b""
        try:
            http.send_response(response.status)
            http.send_header("Content-Type", "application/json")
            http.send_header("Content-Length", str(len(raw)))
            for name, value in response.headers.items():
                http.send_header(name, value)
            http.end_headers()
            http.wfile.write(raw)
            http.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (timeout tests): nothing to deliver

    @staticmethod
    def _stream(http: BaseHTTPRequestHandler, response: FakeResponse) -> None:
        def chunk(delta: dict[str, Any], finish_reason: str | None) -> bytes:
            body = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": "gpt-test",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            return f"data: {json.dumps(body)}\n\n".encode()

        def send(data: bytes) -> None:
            http.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            http.wfile.flush()

        try:
            http.send_response(response.status)
            http.send_header("Content-Type", "text/event-stream")
            http.send_header("Transfer-Encoding", "chunked")
            http.end_headers()
            for index, piece in enumerate(response.stream or []):
                send(chunk({"role": "assistant", "content": piece} if index == 0 else {"content": piece}, None))
                if index == 0 and response.hold_after_first is not None:
                    response.hold_after_first.wait(30)
            send(chunk({}, "stop"))
            send(b"data: [DONE]\n\n")
            http.wfile.write(b"0\r\n\r\n")
            http.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            if response.finished is not None:
                response.finished.set()


def running_fake_openai(**kwargs: Any) -> Iterator[FakeOpenAIServer]:
    """Generator form for fixtures: `yield from running_fake_openai()`."""
    with FakeOpenAIServer(**kwargs) as fake:
        yield fake
