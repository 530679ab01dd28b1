"""faculties: the academic hierarchy (faculties with their departments and semesters). Public."""

from fastapi import Response

from aiteacher.replies import FacultyOut
from aiteacher.web import create_app, lambda_handler

app = create_app("faculties", "List faculties, departments and semesters")
CACHE_SECONDS = 300


@app.get("/", response_model=list[FacultyOut])
def list_faculties(response: Response) -> list[dict]:
    from aiteacher.academics.service import list_faculties
    from aiteacher.db import transaction

    with transaction(read_only=True) as session:
        faculties = list_faculties(session)
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    return faculties


handler = lambda_handler(app)
