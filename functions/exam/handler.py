"""exam: read and list exams, take attempts (answers, submit, graded result), reveal practice keys,
the academic view (aggregates) and LMS export (Moodle XML, GIFT, QTI 2.1, Aiken)."""

from typing import Annotated, Any, Literal

from fastapi import Query, Response

from aiteacher.exams.schemas import Answers, AttemptList, AttemptOut, ExamOut, ExamPage, ExamStatistics
from aiteacher.web import CurrentUser, Db, ReadDb, create_app, lambda_handler

app = create_app("exam", "Exams: read, attempts, grading, statistics, export")
NOT_VISIBLE: dict[int | str, dict[str, Any]] = {404: {"description": "Missing, or not visible to the caller"}}


def _answers(body: Answers | None) -> list[dict]:
    return [answer.model_dump() for answer in body.answers] if body else []


@app.get("/", response_model=ExamPage)
def list_exams(
    caller: CurrentUser,
    db: ReadDb,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> ExamPage:
    from aiteacher.exams.service import list_exams as listing

    return ExamPage.model_validate(listing(db, caller, limit=limit, offset=offset))


@app.get("/{exam_id}", response_model=ExamOut, responses=NOT_VISIBLE)
def read_exam(exam_id: str, caller: CurrentUser, db: ReadDb) -> ExamOut:
    from aiteacher.exams.service import exam_view

    return ExamOut.model_validate(exam_view(db, caller, exam_id))


@app.post(
    "/{exam_id}/reveal",
    response_model=ExamOut,
    responses={**NOT_VISIBLE, 403: {"description": "Not the practice exam's creator"}},
)
def reveal(exam_id: str, caller: CurrentUser, db: Db) -> ExamOut:
    from aiteacher.exams.service import reveal_keys

    return ExamOut.model_validate(reveal_keys(db, caller, exam_id))


@app.post(
    "/{exam_id}/attempts",
    status_code=201,
    response_model=AttemptOut,
    responses={**NOT_VISIBLE, 200: {"description": "In progress"}},
)
def start(exam_id: str, caller: CurrentUser, db: Db, response: Response) -> AttemptOut:
    from aiteacher.exams.attempts import start_attempt

    attempt, created = start_attempt(db, caller, exam_id)
    response.status_code = 201 if created else 200
    return AttemptOut.model_validate(attempt)


@app.get("/{exam_id}/attempts", response_model=AttemptList, responses=NOT_VISIBLE)
def my_attempts(exam_id: str, caller: CurrentUser, db: ReadDb) -> AttemptList:
    from aiteacher.exams.attempts import list_attempts

    return AttemptList.model_validate(list_attempts(db, caller, exam_id))


@app.put("/{exam_id}/attempts/{attempt_id}", response_model=AttemptOut, responses=NOT_VISIBLE)
def save(exam_id: str, attempt_id: str, body: Answers, caller: CurrentUser, db: Db) -> AttemptOut:
    from aiteacher.exams.attempts import save_answers

    return AttemptOut.model_validate(save_answers(db, caller, exam_id, attempt_id, _answers(body)))


@app.post("/{exam_id}/attempts/{attempt_id}/submit", response_model=AttemptOut, responses=NOT_VISIBLE)
def submit(exam_id: str, attempt_id: str, caller: CurrentUser, db: Db, body: Answers | None = None) -> AttemptOut:
    from aiteacher.exams.attempts import submit_attempt

    return AttemptOut.model_validate(submit_attempt(db, caller, exam_id, attempt_id, _answers(body)))


@app.get("/{exam_id}/attempts/{attempt_id}", response_model=AttemptOut, responses=NOT_VISIBLE)
def result(exam_id: str, attempt_id: str, caller: CurrentUser, db: ReadDb) -> AttemptOut:
    from aiteacher.exams.attempts import read_attempt

    return AttemptOut.model_validate(read_attempt(db, caller, exam_id, attempt_id))


@app.get("/{exam_id}/stats", response_model=ExamStatistics, responses={**NOT_VISIBLE, 403: {"description": "Students"}})
def statistics(exam_id: str, caller: CurrentUser, db: ReadDb) -> ExamStatistics:
    from aiteacher.exams.attempts import exam_statistics

    return ExamStatistics.model_validate(exam_statistics(db, caller, exam_id))


@app.get(
    "/{exam_id}/export",
    response_class=Response,
    responses={**NOT_VISIBLE, 403: {"description": "The caller does not see the keys"}},
)
def export(
    exam_id: str, caller: CurrentUser, db: ReadDb, format: Literal["moodle", "gift", "qti", "aiken"] = "moodle"
) -> Response:
    from aiteacher.exams.export import export_exam

    exported = export_exam(db, caller, exam_id, format)
    return Response(
        exported.body,
        media_type=exported.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{exported.filename}"',
            "X-Export-Skipped": str(exported.skipped),
        },
    )


handler = lambda_handler(app)
