"""The StrEnums are the contract's and the database's own strings: using them changes no reply, no stored
row and no CHECK constraint."""

from __future__ import annotations

import json

from aiteacher.enums import AttemptStatus, DocumentStatus, EnrolmentPolicy, ExamStatus, HintLevel, Role


def test_members_serialise_to_the_strings_the_contract_uses() -> None:
    assert [str(role) for role in Role] == ["student", "academic", "admin"]
    assert [str(status) for status in DocumentStatus] == ["queued", "processing", "ready", "failed"]
    assert [str(status) for status in ExamStatus] == ["queued", "generating", "ready", "failed"]
    assert [str(status) for status in AttemptStatus] == ["in_progress", "grading", "graded"]
    assert [str(policy) for policy in EnrolmentPolicy] == ["open", "key", "managed"]
    assert [int(level) for level in HintLevel] == [0, 1, 2]
    assert json.dumps({"role": Role.ADMIN, "hint": HintLevel.WORKED}) == '{"role": "admin", "hint": 2}'
    assert f"{DocumentStatus.READY}" == "ready" and Role.STUDENT == "student"


def test_check_constraints_are_written_from_the_enums_with_the_migrations_text() -> None:
    from aiteacher.db.models import Base

    constraints = {
        constraint.name: str(constraint.sqltext)
        for table in Base.metadata.tables.values()
        for constraint in table.constraints
        if constraint.name in ("ck_users_role", "ck_documents_status", "ck_exams_status", "ck_exam_attempts_status")
    }
    assert constraints == {
        "ck_users_role": "role IN ('student', 'academic', 'admin')",
        "ck_documents_status": "status IN ('queued', 'processing', 'ready', 'failed')",
        "ck_exams_status": "status IN ('queued', 'generating', 'ready', 'failed')",
        "ck_exam_attempts_status": "status IN ('in_progress', 'grading', 'graded')",
    }


def test_the_openapi_document_still_offers_exactly_the_three_roles() -> None:
    from fastapi.testclient import TestClient

    from aiteacher_devtools.gateway import build_gateway

    document = TestClient(build_gateway()).get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    register = next(schema for name, schema in schemas.items() if name.endswith("__RegisterIn"))
    role = register["properties"]["role"]
    if "$ref" in role:
        role = schemas[role["$ref"].rsplit("/", 1)[-1]]
    assert role["enum"] == ["student", "academic", "admin"] and role.get("type") == "string"
