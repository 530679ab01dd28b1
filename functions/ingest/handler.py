"""ingest: academics (own faculty) and admins upload a lecture PDF; ingestion runs as an RQ job."""

from typing import Annotated

from fastapi import Depends, File, Form, UploadFile

from aiteacher.security.tokens import Claims
from aiteacher.web import create_app, lambda_handler, require_roles

app = create_app("ingest", "Upload a lecture PDF", max_body_setting="ingest_max_bytes")
Uploader = Annotated[Claims, Depends(require_roles("academic", "admin"))]


@app.post("/", status_code=202,
          responses={403: {"description": "Not an academic/admin, or another faculty"},
                     413: {"description": "Larger than INGEST_MAX_BYTES"},
                     415: {"description": "Not a PDF"}})
def ingest(caller: Uploader, file: Annotated[UploadFile, File(description="The lecture PDF")],
           course: Annotated[str, Form(min_length=1, max_length=100)],
           faculty_id: Annotated[int | None, Form(ge=1)] = None,
           semester_id: Annotated[int | None, Form(ge=1)] = None) -> dict:
    from aiteacher.curriculum import service
    from aiteacher.db import transaction

    data = service.read_pdf_upload(file.file)
    with transaction() as session:
        target = service.resolve_upload_target(session, caller, faculty_id, semester_id)
        doc, created = service.create_upload(session, caller, target, course=course,
                                             filename=file.filename or "upload.pdf", data=data)
    # The same file already in this course: its document, not a second copy.
    return {"document_id": doc.id, "status": doc.status, "key": doc.object_key, "duplicate": not created}


handler = lambda_handler(app)
