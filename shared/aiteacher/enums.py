"""The closed vocabularies of the system, in one place: roles, the status of each row that has one, the
enrolment policies and the tutor's hint ladder.

Every value is the string (or, for hint levels, the number) the HTTP contract and the database already
use: a `StrEnum` member *is* its string (`Role.ADMIN == "admin"`, `json.dumps` writes `"admin"`), so using
them changes no reply, no stored row and no check constraint. A platform module: it imports nothing.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Role(StrEnum):
    STUDENT = "student"
    ACADEMIC = "academic"
    ADMIN = "admin"


class EnrolmentPolicy(StrEnum):
    OPEN = "open"  # students place themselves (the demo faculties)
    KEY = "key"  # students place themselves with the faculty's enrolment key
    MANAGED = "managed"  # only the faculty's academics and admins place students


class DocumentStatus(StrEnum):
    """`queued -> processing -> ready | failed` (the ingestion job)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class ExamStatus(StrEnum):
    """`queued -> generating -> ready | failed` (the generation job)."""

    QUEUED = "queued"
    GENERATING = "generating"
    READY = "ready"
    FAILED = "failed"


class AttemptStatus(StrEnum):
    """`in_progress -> grading -> graded` (submit; the grading job for theory answers)."""

    IN_PROGRESS = "in_progress"
    GRADING = "grading"
    GRADED = "graded"


class HintLevel(IntEnum):
    """The tutor's hint ladder: a Socratic hint, a stronger hint, a worked explanation."""

    SOCRATIC = 0
    STRONG = 1
    WORKED = 2


#: Rows a job no longer touches: their work is done (or has been given up).
DOCUMENT_DONE = frozenset({DocumentStatus.READY, DocumentStatus.FAILED})
DOCUMENT_PENDING = (DocumentStatus.QUEUED, DocumentStatus.PROCESSING)
EXAM_DONE = frozenset({ExamStatus.READY, ExamStatus.FAILED})
EXAM_PENDING = (ExamStatus.QUEUED, ExamStatus.GENERATING)
