"""search: semantic search over the caller's course material (tenant from the stored profile)."""

from fastapi import Response

from aiteacher.curriculum.schemas import SearchIn, SearchOut, SearchResult
from aiteacher.enums import Role
from aiteacher.web import CurrentUser, ReadDb, create_app, lambda_handler

app = create_app("search", "Search course material")


@app.post(
    "/", response_model=SearchOut, responses={409: {"description": "The student's profile has no faculty/semester yet"}}
)
def search(body: SearchIn, caller: CurrentUser, db: ReadDb, response: Response) -> SearchOut:
    from aiteacher.audit import audit
    from aiteacher.curriculum import search as curriculum

    scope = curriculum.caller_scope(
        db, caller, course=body.course, semester_id=body.semester_id, faculty_id=body.faculty_id
    )
    db.close()  # the scope is known: no connection is held while the query is embedded and searched
    results, cached = curriculum.search(scope, body.query, body.top_k)
    if caller.role != Role.STUDENT:
        # Whether a query was cached tells a student what classmates searched: staff only (issue #8.4).
        response.headers["X-Cache"] = "hit" if cached else "miss"
    audit("ai.search", "ok", actor=caller.sub, results=len(results), cached=cached)
    return SearchOut(results=[SearchResult(**hit.model_dump()) for hit in results])


handler = lambda_handler(app)
