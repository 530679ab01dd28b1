"""chat: the AI tutor. Answers only from the caller's course material, with page citations; guides
rather than hands out answers; refuses assessed work and what the material does not cover.
`Accept: text/event-stream` streams the answer as server-sent events; JSON is the default."""

from fastapi import Request
from fastapi.responses import StreamingResponse

from aiteacher.tutor.schemas import ChatIn, ChatOut, Citation
from aiteacher.web import CurrentUser, create_app, lambda_handler

app = create_app("chat", "Ask the AI tutor", oldest_first=True)
SSE = "text/event-stream"


@app.post(
    "/",
    response_model=ChatOut,
    responses={
        200: {
            "content": {
                SSE: {
                    "schema": {
                        "type": "string",
                        "description": "`delta` {text} events, then `done` {session_id, citations, "
                        "refused, reason, hint_level} or `error` {problem}",
                    }
                }
            }
        },
        404: {"description": "Unknown or another user's session"},
        409: {"description": "The profile has no faculty/semester yet"},
    },
)
async def chat(body: ChatIn, caller: CurrentUser, request: Request) -> ChatOut | StreamingResponse:
    from aiteacher.tutor import service

    # Phase 1 (a short transaction on the transaction executor) fails as a plain problem reply, before any stream.
    context = await service.in_transaction_pool(
        service.prepare_turn, caller, body.message, body.session_id, body.course
    )
    if SSE in request.headers.get("accept", ""):
        events = (service.sse(event, data) async for event, data in service.stream_turn(context))
        return StreamingResponse(
            events, media_type=SSE, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
    result = await service.answer_turn(context)
    result = await service.in_transaction_pool(service.record_turn, context, result)
    return ChatOut(
        session_id=result.session_id,
        answer=result.answer,
        citations=[Citation(**c) for c in result.citations],
        refused=result.refused,
        reason=result.reason,
        hint_level=result.hint_level,
    )


handler = lambda_handler(app)
