"""The access policy through HTTP: placement a faculty controls, user administration, and role changes
and deactivation that take effect on the next request.

Regression tests for issue #8: "an academic can take over any faculty", "students pick any tenant",
"deactivated or demoted users keep access"."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import (
    assert_problem,
    bearer,
    hierarchy,
    login,
    make_pdf,
    place,
    run_jobs,
    signed_in,
    unique_email,
    upload,
)


@pytest.fixture
def audit_lines() -> Iterator[list[dict[str, Any]]]:
    """The audit records written during the test."""
    from aiteacher import audit

    records: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(json.loads(record.getMessage()))

    logger = audit._get_logger()
    handler = Collect()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.fixture
def faculties(client) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return hierarchy(client)


@pytest.fixture
def admin(admin_token: str) -> dict[str, Any]:
    return {"headers": bearer(admin_token)}


@pytest.fixture
def restore_policies(client, admin, faculties) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Tests that change a faculty's enrolment policy put every faculty back to `open` (the demo default)."""
    yield
    for faculty in faculties:
        response = client.put(f"/users/enrolment/{faculty['id']}", headers=admin["headers"], json={"policy": "open"})
        assert response.status_code == 200, response.text


def semester(faculty: dict[str, Any], number: int) -> int:
    return next(s["id"] for s in faculty["semesters"] if s["number"] == number)


def me(client, user) -> Any:  # type: ignore[no-untyped-def]
    return client.get("/me", headers=user["headers"])


# --- staff never move themselves ------------------------------------------------------------------


@pytest.fixture
def sci_material(client, admin, faculties) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A sci document (uploaded by the admin) and a sci exam with keys (requested by the admin)."""
    sci = faculties[1]
    response = upload(
        client,
        admin,
        make_pdf([["Sci only: the Rellick constant of bonded quarks."]]),
        course="physics",
        faculty_id=sci["id"],
        semester_id=semester(sci, 2),
    )
    assert response.status_code == 202, response.text
    run_jobs()
    exam = client.post(
        "/generate",
        headers=admin["headers"],
        json={"num_mcq": 1, "num_theory": 0, "faculty_id": sci["id"], "semester_id": semester(sci, 2)},
    )
    assert exam.status_code == 202, exam.text
    return {"document_id": response.json()["document_id"], "exam_id": exam.json()["exam_id"], "faculty": sci}


def test_academic_cannot_move_to_another_faculty_and_reach_its_material(
    client, admin_token, faculties, sci_material
) -> None:
    eng, sci = faculties[0], faculties[1]
    academic = signed_in(client, "academic", admin_token)
    place(client, academic, eng, None)

    moved = client.put("/me", headers=academic["headers"], json={"faculty_id": sci["id"]})
    assert_problem(moved, 403, "forbidden")
    assert me(client, academic).json()["faculty_id"] == eng["id"]
    # Sending the unchanged placement (a client that PUTs the whole profile) is not a move.
    same = client.put("/me", headers=academic["headers"], json={"faculty_id": eng["id"], "full_name": "Dr Eng"})
    assert same.status_code == 200 and same.json()["full_name"] == "Dr Eng"

    doc, exam = sci_material["document_id"], sci_material["exam_id"]
    assert_problem(client.get(f"/documents/{doc}", headers=academic["headers"]), 404, "not_found")
    assert_problem(client.delete(f"/documents/{doc}", headers=academic["headers"]), 404, "not_found")
    listed = client.get("/documents", headers=academic["headers"], params={"faculty_id": sci["id"]}).json()
    assert all(d["faculty_id"] == eng["id"] for d in listed["documents"])
    assert_problem(client.get(f"/exams/{exam}", headers=academic["headers"]), 404, "not_found")
    into_sci = upload(
        client, academic, make_pdf([["An eng lecture."]]), faculty_id=sci["id"], semester_id=semester(sci, 1)
    )
    assert_problem(into_sci, 403, "forbidden")
    assert_problem(
        client.post(
            "/search", headers=academic["headers"], json={"query": "Rellick constant", "faculty_id": sci["id"]}
        ),
        403,
        "forbidden",
    )
    # The sci document is still there for the admin.
    assert client.get(f"/documents/{doc}", headers=bearer(admin_token)).status_code == 200


def test_admin_cannot_move_itself_through_put_me(client, admin_token, faculties) -> None:
    other_admin = signed_in(client, "admin", admin_token)
    assert_problem(
        client.put("/me", headers=other_admin["headers"], json={"faculty_id": faculties[2]["id"]}), 403, "forbidden"
    )
    assert_problem(
        client.put("/me", headers=other_admin["headers"], json={"semester_id": semester(faculties[2], 1)}),
        403,
        "forbidden",
    )


def test_academic_without_placement_gets_profile_incomplete_everywhere(client, admin_token) -> None:
    """One status for "profile incomplete": 409 `profile_incomplete`, for uploads, documents and search."""
    academic = signed_in(client, "academic", admin_token)
    assert_problem(upload(client, academic, make_pdf([["x"]])), 409, "profile_incomplete")
    assert_problem(client.get("/documents", headers=academic["headers"]), 409, "profile_incomplete")
    assert_problem(client.post("/search", headers=academic["headers"], json={"query": "x"}), 409, "profile_incomplete")
    student = signed_in(client)
    assert_problem(
        client.post("/generate", headers=student["headers"], json={"num_mcq": 1, "num_theory": 0}),
        409,
        "profile_incomplete",
    )


# --- enrolment policies ---------------------------------------------------------------------------


def test_student_self_places_in_an_open_faculty_and_it_is_audited(client, faculties, audit_lines) -> None:
    student = signed_in(client)
    hum = faculties[2]
    assert hum["enrolment_policy"] == "open"
    response = client.put(
        "/me", headers=student["headers"], json={"faculty_id": hum["id"], "semester_id": semester(hum, 4)}
    )
    assert response.status_code == 200, response.text
    lines = [r for r in audit_lines if r["action"] == "user.placement"]
    assert lines and lines[-1]["outcome"] == "ok" and lines[-1]["actor"] == student["id"]
    assert lines[-1]["target"] == student["id"] and lines[-1]["via"] == "self"
    assert lines[-1]["after"]["faculty_id"] == hum["id"] and lines[-1]["before"]["faculty_id"] is None


def test_key_faculty_needs_the_current_enrolment_key(
    client, admin_token, faculties, restore_policies, audit_lines
) -> None:
    sci = faculties[1]
    academic = signed_in(client, "academic", admin_token)
    place(client, academic, sci, None)
    enrolment = client.put(f"/users/enrolment/{sci['id']}", headers=academic["headers"], json={"policy": "key"})
    assert enrolment.status_code == 200, enrolment.text
    first_key = enrolment.json()["enrolment_key"]
    assert first_key and enrolment.json()["policy"] == "key" and enrolment.json()["key_set"] is True
    # The key is shown once: reading the policy never returns it.
    shown = client.get(f"/users/enrolment/{sci['id']}", headers=academic["headers"]).json()
    assert shown["enrolment_key"] is None and shown["key_set"] is True
    assert next(f for f in hierarchy(client) if f["id"] == sci["id"])["enrolment_policy"] == "key"

    target = {"faculty_id": sci["id"], "semester_id": semester(sci, 3)}
    student = signed_in(client)
    assert_problem(client.put("/me", headers=student["headers"], json=target), 403, "enrolment_key_required")
    assert_problem(
        client.put("/me", headers=student["headers"], json={**target, "enrolment_key": "0000-0000"}),
        403,
        "enrolment_key_invalid",
    )
    assert me(client, student).json()["faculty_id"] is None
    assert any(
        r["action"] == "user.placement" and r["outcome"] == "denied" and r["reason"] == "enrolment_key_invalid"
        for r in audit_lines
    )
    joined = client.put("/me", headers=student["headers"], json={**target, "enrolment_key": first_key.upper()})
    assert joined.status_code == 200 and joined.json()["faculty_id"] == sci["id"]
    # Once admitted, moving between the faculty's semesters needs no key.
    assert client.put("/me", headers=student["headers"], json={"semester_id": semester(sci, 4)}).status_code == 200

    rotated = client.post(f"/users/enrolment/{sci['id']}/key", headers=academic["headers"])
    assert rotated.status_code == 200
    second_key = rotated.json()["enrolment_key"]
    assert second_key and second_key != first_key
    latecomer = signed_in(client)
    assert_problem(
        client.put("/me", headers=latecomer["headers"], json={**target, "enrolment_key": first_key}),
        403,
        "enrolment_key_invalid",
    )
    assert (
        client.put("/me", headers=latecomer["headers"], json={**target, "enrolment_key": second_key}).status_code == 200
    )
    assert any(r["action"] == "faculty.enrolment_key" and r["outcome"] == "rotated" for r in audit_lines)
    assert all(first_key not in json.dumps(r) and second_key not in json.dumps(r) for r in audit_lines)


def test_managed_faculty_places_its_students_itself(
    client, admin_token, faculties, restore_policies, audit_lines
) -> None:
    eng, hum = faculties[0], faculties[2]
    hum_academic = signed_in(client, "academic", admin_token)
    place(client, hum_academic, hum, None)
    eng_academic = signed_in(client, "academic", admin_token)
    place(client, eng_academic, eng, None)
    assert (
        client.put(f"/users/enrolment/{hum['id']}", headers=hum_academic["headers"], json={"policy": "managed"}).json()[
            "policy"
        ]
        == "managed"
    )

    student = signed_in(client)
    target = {"faculty_id": hum["id"], "semester_id": semester(hum, 2)}
    assert_problem(client.put("/me", headers=student["headers"], json=target), 403, "enrolment_managed")
    assert_problem(
        client.put("/me", headers=student["headers"], json={**target, "enrolment_key": "anything"}),
        403,
        "enrolment_managed",
    )

    # The faculty's academic finds the student by exact email and places them.
    found = client.get("/users", headers=hum_academic["headers"], params={"email": student["email"]}).json()
    assert [u["id"] for u in found["users"]] == [student["id"]]
    placed = client.put(f"/users/{student['id']}/placement", headers=hum_academic["headers"], json=target)
    assert placed.status_code == 200 and placed.json()["semester_id"] == target["semester_id"]
    assert me(client, student).json()["faculty_id"] == hum["id"]  # the cached profile was forgotten
    line = [r for r in audit_lines if r["action"] == "user.placement" and r["outcome"] == "ok"][-1]
    assert line["actor"] == hum_academic["id"] and line["target"] == student["id"] and line["via"] == "academic"
    # Inside a managed faculty the student changes nothing themselves.
    assert_problem(
        client.put("/me", headers=student["headers"], json={"semester_id": semester(hum, 3)}), 403, "enrolment_managed"
    )

    # Another faculty's academic can neither move the student into hum nor out of it.
    assert_problem(
        client.put(f"/users/{student['id']}/placement", headers=eng_academic["headers"], json=target), 403, "forbidden"
    )
    assert_problem(
        client.put(f"/users/{student['id']}/placement", headers=eng_academic["headers"], json={}), 403, "forbidden"
    )
    # Academics never place academics; students never place anyone.
    assert_problem(
        client.put(f"/users/{eng_academic['id']}/placement", headers=hum_academic["headers"], json=target),
        403,
        "forbidden",
    )
    other = signed_in(client)
    assert_problem(
        client.put(f"/users/{other['id']}/placement", headers=student["headers"], json=target), 403, "forbidden"
    )
    # ... and another faculty's academic cannot change hum's policy or see its key state.
    assert_problem(
        client.put(f"/users/enrolment/{hum['id']}", headers=eng_academic["headers"], json={"policy": "open"}),
        403,
        "forbidden",
    )
    assert_problem(client.post(f"/users/enrolment/{hum['id']}/key", headers=eng_academic["headers"]), 403, "forbidden")
    assert_problem(client.get(f"/users/enrolment/{hum['id']}", headers=eng_academic["headers"]), 403, "forbidden")


def test_enrolment_endpoints_refuse_bad_input_and_students(client, admin, faculties) -> None:
    student = signed_in(client)
    faculty_id = faculties[0]["id"]
    assert_problem(
        client.put(f"/users/enrolment/{faculty_id}", headers=student["headers"], json={"policy": "open"}),
        403,
        "forbidden",
    )
    assert_problem(client.get(f"/users/enrolment/{faculty_id}", headers=student["headers"]), 403, "forbidden")
    assert_problem(
        client.put(f"/users/enrolment/{faculty_id}", headers=admin["headers"], json={"policy": "closed"}),
        422,
        "validation_error",
    )
    assert_problem(
        client.put(f"/users/enrolment/{faculty_id}", headers=admin["headers"], json={"policy": "open", "key": "mine"}),
        422,
        "validation_error",
    )
    assert_problem(client.get("/users/enrolment/999999", headers=admin["headers"]), 404, "not_found")
    assert_problem(client.post("/users/enrolment/999999/key", headers=admin["headers"]), 404, "not_found")
    assert_problem(client.get(f"/users/enrolment/{10**30}", headers=admin["headers"]), 422, "validation_error")
    assert_problem(client.get("/users/enrolment/abc", headers=admin["headers"]), 422, "validation_error")
    assert_problem(client.get(f"/users/enrolment/{faculty_id}"), 401)
    assert_problem(
        client.put("/me", headers=student["headers"], json={"faculty_id": faculty_id, "enrolment_key": "k" * 65}),
        422,
        "validation_error",
    )


# --- user administration --------------------------------------------------------------------------


def test_admin_lists_and_searches_users_page_by_page(client, admin, admin_token) -> None:
    marker = unique_email("needle").split("@")[0]
    created = []
    for _ in range(3):
        response = client.post(
            "/auth/register",
            json={
                "email": f"{marker}-{len(created)}@example.edu",
                "password": "correct horse battery staple",
                "full_name": "Needle Person",
            },
        )
        assert response.status_code == 201
        created.append(response.json()["id"])
    found = client.get("/users", headers=admin["headers"], params={"q": marker.upper(), "limit": 2})
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["total"] == 3 and len(body["users"]) == 2 and body["limit"] == 2
    rest = client.get("/users", headers=admin["headers"], params={"q": marker, "limit": 2, "offset": 2}).json()
    assert len(rest["users"]) == 1
    assert {u["id"] for u in body["users"] + rest["users"]} == set(created)
    assert all(u["role"] == "student" and u["is_active"] for u in body["users"])
    assert "password_hash" not in json.dumps(body)
    # LIKE wildcards in a query are literal.
    assert client.get("/users", headers=admin["headers"], params={"q": "%_%"}).json()["total"] == 0
    academics = client.get("/users", headers=admin["headers"], params={"role": "academic", "limit": 100}).json()
    assert all(u["role"] == "academic" for u in academics["users"])
    one = client.get(f"/users/{created[0]}", headers=admin["headers"])
    assert one.status_code == 200 and one.json()["email"] == f"{marker}-0@example.edu"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": 10**30},
        {"offset": -1},
        {"offset": 10**30},
        {"offset": "x"},
        {"q": "q" * 101},
        {"role": "root"},
        {"faculty_id": 0},
        {"faculty_id": 10**30},
        {"active": "maybe"},
        {"email": "e" * 321},
    ],
)
def test_user_list_refuses_malformed_or_huge_parameters(client, admin, params) -> None:
    assert_problem(client.get("/users", headers=admin["headers"], params=params), 422, "validation_error")


def test_user_administration_is_for_admins(client, admin_token, faculties) -> None:
    student = signed_in(client)
    academic = signed_in(client, "academic", admin_token)
    place(client, academic, faculties[0], None)
    victim = signed_in(client)
    assert_problem(client.get("/users", headers=student["headers"]), 403, "forbidden")
    assert_problem(client.get(f"/users/{victim['id']}", headers=student["headers"]), 403, "forbidden")
    for caller in (student, academic):
        assert_problem(
            client.put(f"/users/{victim['id']}/role", headers=caller["headers"], json={"role": "admin"}),
            403,
            "forbidden",
        )
        assert_problem(client.post(f"/users/{victim['id']}/deactivate", headers=caller["headers"]), 403, "forbidden")
        assert_problem(client.post(f"/users/{victim['id']}/reactivate", headers=caller["headers"]), 403, "forbidden")
    assert_problem(client.get("/users"), 401)
    assert_problem(client.get("/users", headers=bearer("not-a-token")), 401, "invalid_token")
    # An academic's directory is the students of their own faculty.
    listed = client.get("/users", headers=academic["headers"], params={"limit": 100}).json()["users"]
    assert all(u["role"] == "student" and u["faculty_id"] == faculties[0]["id"] for u in listed)
    assert_problem(
        client.get("/users", headers=academic["headers"], params={"faculty_id": faculties[1]["id"]}), 403, "forbidden"
    )
    assert_problem(client.get("/users", headers=academic["headers"], params={"role": "admin"}), 403, "forbidden")
    assert_problem(client.get(f"/users/{victim['id']}", headers=academic["headers"]), 404, "not_found")


def test_user_admin_refuses_unknown_users_and_bad_bodies(client, admin, admin_token) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert_problem(client.get(f"/users/{missing}", headers=admin["headers"]), 404, "not_found")
    assert_problem(
        client.put(f"/users/{missing}/role", headers=admin["headers"], json={"role": "academic"}), 404, "not_found"
    )
    assert_problem(client.put(f"/users/{missing}/placement", headers=admin["headers"], json={}), 404, "not_found")
    assert_problem(client.post(f"/users/{missing}/deactivate", headers=admin["headers"]), 404, "not_found")
    assert_problem(client.get(f"/users/{'x' * 37}", headers=admin["headers"]), 422, "validation_error")
    user = signed_in(client)
    assert_problem(
        client.put(f"/users/{user['id']}/role", headers=admin["headers"], json={"role": "root"}),
        422,
        "validation_error",
    )
    assert_problem(client.put(f"/users/{user['id']}/role", headers=admin["headers"], json={}), 422, "validation_error")
    assert_problem(
        client.put(f"/users/{user['id']}/placement", headers=admin["headers"], json={"faculty_id": 10**30}),
        422,
        "validation_error",
    )
    assert_problem(
        client.put(f"/users/{user['id']}/placement", headers=admin["headers"], json={"faculty_id": 999999}),
        422,
        "unknown_faculty",
    )
    # An admin does not demote or deactivate itself (no lock-out by accident).
    me_id = client.get("/me", headers=admin["headers"]).json()["id"]
    assert_problem(
        client.put(f"/users/{me_id}/role", headers=admin["headers"], json={"role": "student"}), 403, "forbidden"
    )
    assert_problem(client.post(f"/users/{me_id}/deactivate", headers=admin["headers"]), 403, "forbidden")


def test_admin_places_an_academic_and_it_is_audited(client, admin, admin_token, faculties, audit_lines) -> None:
    academic = signed_in(client, "academic", admin_token)
    sci = faculties[1]
    response = client.put(
        f"/users/{academic['id']}/placement",
        headers=admin["headers"],
        json={"faculty_id": sci["id"], "department_id": sci["departments"][0]["id"]},
    )
    assert response.status_code == 200, response.text
    assert me(client, academic).json()["department_id"] == sci["departments"][0]["id"]
    line = [r for r in audit_lines if r["action"] == "user.placement"][-1]
    assert line["via"] == "admin" and line["target"] == academic["id"] and line["after"]["faculty_id"] == sci["id"]
    mismatch = client.put(
        f"/users/{academic['id']}/placement",
        headers=admin["headers"],
        json={"faculty_id": faculties[0]["id"], "department_id": sci["departments"][0]["id"]},
    )
    assert_problem(mismatch, 422, "department_faculty_mismatch")


# --- changes take effect on the next request ------------------------------------------------------


def test_deactivated_user_is_refused_on_the_next_request(client, admin, audit_lines) -> None:
    user = signed_in(client)
    assert me(client, user).status_code == 200  # the profile is now cached
    response = client.post(f"/users/{user['id']}/deactivate", headers=admin["headers"])
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert_problem(me(client, user), 401)
    assert_problem(client.post("/search", headers=user["headers"], json={"query": "x"}), 401)
    assert_problem(client.post("/auth/refresh", json={"refresh_token": user["refresh_token"]}), 401)
    assert_problem(
        client.post("/auth/login", json={"email": user["email"], "password": user["password"]}),
        401,
        "invalid_credentials",
    )
    assert any(r["action"] == "user.deactivate" and r["target"] == user["id"] for r in audit_lines)
    listed = client.get("/users", headers=admin["headers"], params={"email": user["email"]}).json()
    assert listed["users"][0]["is_active"] is False

    assert client.post(f"/users/{user['id']}/reactivate", headers=admin["headers"]).json()["is_active"] is True
    # Tokens from before the deactivation stay refused; a new login works.
    assert_problem(me(client, user), 401)
    fresh = login(client, user["email"])
    assert client.get("/me", headers=bearer(fresh["access_token"])).status_code == 200


def test_deactivation_holds_when_redis_forgets_the_deny_list(client, admin) -> None:
    """The token version lives in the database: losing Redis' deny-list and profile cache changes nothing."""
    import jwt

    from aiteacher.cache import get_redis
    from aiteacher.identity import profiles

    user = signed_in(client)
    assert me(client, user).status_code == 200
    assert client.post(f"/users/{user['id']}/deactivate", headers=admin["headers"]).status_code == 200
    family = jwt.decode(user["access_token"], options={"verify_signature": False})["fam"]
    get_redis().delete(f"deny:fam:{family}", profiles.cache_key(user["id"]))
    assert_problem(me(client, user), 401, "account_disabled")
    assert client.post(f"/users/{user['id']}/reactivate", headers=admin["headers"]).status_code == 200
    get_redis().delete(f"deny:fam:{family}", profiles.cache_key(user["id"]))
    assert_problem(me(client, user), 401, "token_revoked")


def test_demoted_academic_loses_academic_rights_on_the_next_request(
    client, admin, admin_token, faculties, audit_lines
) -> None:
    import jwt

    from aiteacher.cache import get_redis

    academic = signed_in(client, "academic", admin_token)
    place(client, academic, faculties[0], None)
    assert client.get("/documents", headers=academic["headers"]).status_code == 200
    demoted = client.put(f"/users/{academic['id']}/role", headers=admin["headers"], json={"role": "student"})
    assert demoted.status_code == 200 and demoted.json()["role"] == "student"
    assert_problem(client.get("/documents", headers=academic["headers"]), 401)
    assert_problem(upload(client, academic, make_pdf([["x"]])), 401)
    # Even with Redis' deny-list gone, the old token's version is refused.
    get_redis().delete(f"deny:fam:{jwt.decode(academic['access_token'], options={'verify_signature': False})['fam']}")
    assert_problem(client.get("/documents", headers=academic["headers"]), 401, "token_revoked")
    again = login(client, academic["email"])
    assert_problem(client.get("/documents", headers=bearer(again["access_token"])), 403, "forbidden")
    assert client.get("/me", headers=bearer(again["access_token"])).json()["role"] == "student"
    line = [r for r in audit_lines if r["action"] == "user.role_change"][-1]
    assert line["before"] == "academic" and line["role"] == "student" and line["target"] == academic["id"]


def test_promoted_student_gets_academic_rights_only_after_signing_in_again(client, admin, faculties) -> None:
    student = signed_in(client)
    place(client, student, faculties[0], 1)
    assert (
        client.put(f"/users/{student['id']}/role", headers=admin["headers"], json={"role": "academic"}).status_code
        == 200
    )
    assert_problem(client.get("/documents", headers=student["headers"]), 401, "token_revoked")
    fresh = login(client, student["email"])
    assert client.get("/documents", headers=bearer(fresh["access_token"])).status_code == 200
    # Now an academic: no more self-placement.
    assert_problem(
        client.put("/me", headers=bearer(fresh["access_token"]), json={"faculty_id": faculties[1]["id"]}),
        403,
        "forbidden",
    )
