"""exam: read and list exams, take attempts (answers, submit, graded result), reveal practice keys,
the academic view (aggregates) and LMS export (Moodle XML, GIFT, QTI 2.1, Aiken)."""

from typing import Annotated, Any, Literal

from fastapi import Query, Response

from aiteacher.exams.schemas import Answers
from aiteacher.replies import ExamOut
from aiteacher.web import CurrentUser, create_app, lambda_handler

app = create_app("exam", "Exams: read, attempts, grading, statistics, export")
NOT_VISIBLE: dict[int | str, dict[str, Any]] = {404: {"description": "Missing, or not visible to the caller"}}


def _answers(body: Answers | None) -> list[dict]:
    return [answer.model_dump() for answer in body.answers] if body else []


@app.get("/")
def list_exams(
    caller: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> dict:
    from aiteacher.db import transaction
    from aiteacher.exams.service import list_exams as listing

    with transaction(read_only=True) as session:
        return listing(session, caller, limit=limit, offset=offset)


@app.get("/{exam_id}", response_model=ExamOut, responses=NOT_VISIBLE)
def read_exam(exam_id: str, caller: CurrentUser) -> dict:
    from aiteacher.db import transaction
    from aiteacher.exams.service import exam_view

    with transaction(read_only=True) as session:
        return exam_view(session, caller, exam_id)


@app.post("/{exam_id}/reveal", responses={**NOT_VISIBLE, 403: {"description": "Not the practice exam's creator"}})
def reveal(exam_id: str, caller: CurrentUser) -> dict:
    from aiteacher.db import transaction
    from aiteacher.exams.service import reveal_keys

    with transaction() as session:
        return reveal_keys(session, caller, exam_id)


@app.post("/{exam_id}/attempts", status_code=201, responses={**NOT_VISIBLE, 200: {"description": "In progress"}})
def start(exam_id: str, caller: CurrentUser, response: Response) -> dict:
    from aiteacher.db import transaction
    from aiteacher.exams.attempts import start_attempt

    with transaction() as session:
        attempt, created = start_attempt(session, caller, exam_id)
    response.status_code = 201 if created else 200
    return attempt


@app.get("/{exam_id}/attempts", responses=NOT_VISIBLE)
def my_attempts(exam_id: str, caller: CurrentUser) -> dict:
    from aiteacher.db import transaction
    from aiteacher.exams.attempts import list_attempts

    with transaction(read_only=True) as session:
        return list_attempts(session, caller, exam_id)


@app.put("/{exam_id}/attempts/{attempt_id}", responses=NOT_VISIBLE)
def save(exam_id: str, attempt_id: str, body: Answers, caller: CurrentUser) -> dict:
    from aiteacher.db import transaction
    from aiteacher.exams.attempts import save_answers

    with transaction() as session:
        return save_answers(session, caller, exam_id, attempt_id, _answers(body))


@app.post("/{exam_id}/attempts/{attempt_id}/submit", responses=NOT_VISIBLE)
def submit(exam_id: str, attempt_id: str, caller: CurrentUser, body: Answers | None = None) -> dict:
    from aiteacher.db import transaction
    from aiteacher.exams.attempts import submit_attempt

    with transaction() as session:
        return submit_attempt(session, caller, exam_id, attempt_id, _answers(body))


@app.get("/{exam_id}/attempts/{attempt_id}", responses=NOT_VISIBLE)
def result(exam_id: str, attempt_id: str, caller: CurrentUser) -> dict:
    from aiteacher.db import transaction
    from aiteacher.exams.attempts import read_attempt

    with transaction(read_only=True) as session:
        return read_attempt(session, caller, exam_id, attempt_id)


@app.get("/{exam_id}/stats", responses={**NOT_VISIBLE, 403: {"description": "Students"}})
def statistics(exam_id: str, caller: CurrentUser) -> dict:
    from aiteacher.db import transaction
    from aiteacher.exams.attempts import exam_statistics

    with transaction(read_only=True) as session:
        return exam_statistics(session, caller, exam_id)


@app.get(
    "/{exam_id}/export",
    response_class=Response,
    responses={**NOT_VISIBLE, 403: {"description": "The caller does not see the keys"}},
)
def export(exam_id: str, caller: CurrentUser, format: Literal["moodle", "gift", "qti", "aiken"] = "moodle") -> Response:
    from aiteacher.db import transaction
    from aiteacher.exams.export import export_exam

    with transaction(read_only=True) as session:
        exported = export_exam(session, caller, exam_id, format)
    return Response(
        exported.body,
        media_type=exported.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{exported.filename}"',
            "X-Export-Skipped": str(exported.skipped),
        },
    )


handler = lambda_handler(app)
