"""exam: an exam's status and questions (keys for its creator, the faculty's academics and admins)."""

from aiteacher.replies import ExamOut
from aiteacher.web import CurrentUser, create_app, lambda_handler

app = create_app("exam", "Read an exam")


@app.get("/{exam_id}", response_model=ExamOut,
          responses={404: {"description": "Missing, or not visible to the caller"}})
def read_exam(exam_id: str, caller: CurrentUser) -> dict:
    from aiteacher.db import transaction
    from aiteacher.exams.service import exam_view

    with transaction(read_only=True) as session:
        return exam_view(session, caller, exam_id)


handler = lambda_handler(app)
