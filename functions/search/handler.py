"""search: semantic search over the caller's course material (tenant from the stored profile)."""

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field

from aiteacher.bounds import MAX_ID
from aiteacher.web import CurrentUser, create_app, lambda_handler

app = create_app("search", "Search course material")


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=1000)
    top_k: int = Field(5, ge=1, le=50)
    course: str | None = Field(None, max_length=100)
    semester_id: int | None = Field(None, ge=1, le=MAX_ID, description="Academics and admins: narrow to a semester")
    faculty_id: int | None = Field(None, ge=1, le=MAX_ID, description="Admins: narrow to a faculty")


class SearchResult(BaseModel):
    document_id: str
    title: str
    course: str
    page: int = Field(description="The unit number: a PDF page, a slide or a section (see `unit`)")
    text: str
    score: float
    unit: str = Field("page", description="page | slide | section")
    ocr: bool = Field(False, description="The text was recognised from a scanned page")
    page_url: str = Field(description="GET it (same token) for the page's text; add /image for a PNG")


class SearchOut(BaseModel):
    results: list[SearchResult]


@app.post(
    "/", response_model=SearchOut, responses={409: {"description": "The student's profile has no faculty/semester yet"}}
)
def search(body: SearchIn, caller: CurrentUser, response: Response) -> SearchOut:
    from aiteacher.audit import audit
    from aiteacher.curriculum import search as curriculum
    from aiteacher.db import transaction

    with transaction(read_only=True) as session:
        scope = curriculum.caller_scope(
            session, caller, course=body.course, semester_id=body.semester_id, faculty_id=body.faculty_id
        )
    results, cached = curriculum.search(scope, body.query, body.top_k)
    if caller.role != "student":
        # Whether a query was cached tells a student what classmates searched: staff only (issue #8.4).
        response.headers["X-Cache"] = "hit" if cached else "miss"
    audit("ai.search", "ok", actor=caller.sub, results=len(results), cached=cached)
    return SearchOut(results=[SearchResult(**hit.model_dump()) for hit in results])


handler = lambda_handler(app)
