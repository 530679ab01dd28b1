"""LMS export: Moodle XML, GIFT, IMS QTI 2.1 (content package, XSD-valid) and Aiken parse back with every
question, option, key and feedback intact, nasty characters included; only key holders may export."""

from __future__ import annotations

import html
import io
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from aiteacher.exams.export import build
from tests.helpers import assert_problem, bearer, hierarchy, place, run_jobs, signed_in
from tests.integration.test_exam_attempts import course_exam  # noqa: F401  (module fixture)
from tests.lms_readers import read_aiken, read_gift

SCHEMAS = Path(__file__).resolve().parents[1] / "fixtures" / "qti21"
QTI = "{http://www.imsglobal.org/xsd/imsqti_v2p1}"
CP = "{http://www.imsglobal.org/xsd/imscp_v1p1}"
NASTY = "GIFT ~=#{}: and \\ back, XML <b>&amp; \"q\" 'a' ]]>, unicode ünï 数据 עברית 🚀"

QUESTIONS = [
    {
        "type": "mcq",
        "question": f"Which one? {NASTY}",
        "options": ["a = b {x}", "~tilde #1", "<tag> & co", "x:y 🚀"],
        "answer_index": 2,
        "explanation": f"Because {NASTY}\nsecond line",
        "bloom": "remember",
        "source": {"document_id": "doc-1", "page": 3, "title": "Lecture: {1} #intro"},
    },
    {
        "type": "mcq",
        "question": "A. looks like an Aiken option",
        "options": ["one", "two", "three", "four"],
        "answer_index": 0,
        "explanation": "plain",
        "source": {"document_id": "doc-1", "page": 1, "title": "T"},
    },
    {
        "type": "mcq",
        "question": "Plain\x07 control char",
        "options": ["ANSWER: B", "B", "C", "D"],
        "answer_index": 3,
        "explanation": "e",
        "source": {"document_id": "doc-1", "page": 2, "title": "T"},
    },
    {
        "type": "theory",
        "question": f"Explain {NASTY}",
        "model_answer": f"Model {NASTY}",
        "rubric": [f"point one {NASTY}", "point = two"],
        "source": {"document_id": "doc-1", "page": 4, "title": "T"},
    },
]


def _plain(text: str) -> str:
    return text.replace("\x07", "")


def _moodle_text(element) -> str:  # type: ignore[no-untyped-def]
    return html.unescape((element.findtext("text") or "").replace("<br>\n", "\n"))


def check_moodle(body: bytes, questions: list[dict]) -> None:
    root = etree.fromstring(body)
    items = [q for q in root.findall("question") if q.get("type") != "category"]
    assert len(items) == len(questions)
    for item, question in zip(items, questions, strict=True):
        assert _moodle_text(item.find("questiontext")) == _plain(question["question"])
        if question["type"] == "mcq":
            assert item.get("type") == "multichoice" and item.findtext("single") == "true"
            answers = item.findall("answer")
            assert [_moodle_text(a) for a in answers] == question["options"]
            assert [a.get("fraction") for a in answers].index("100") == question["answer_index"]
            assert [a.get("fraction") for a in answers].count("100") == 1
            correct = _moodle_text(answers[question["answer_index"]].find("feedback"))
            assert _plain(question["explanation"]) in correct
            assert _plain(question["explanation"]) in _moodle_text(item.find("generalfeedback"))
            assert f"p. {question['source']['page']}" in _moodle_text(item.find("generalfeedback"))
        else:
            assert item.get("type") == "essay"
            info = _moodle_text(item.find("graderinfo"))
            assert question["model_answer"] in info and all(point in info for point in question["rubric"])


def check_gift(body: bytes, questions: list[dict]) -> None:
    parsed = read_gift(body.decode())
    assert len(parsed) == len(questions)
    for item, question in zip(parsed, questions, strict=True):
        assert item["text"] == _plain(question["question"])
        if question["type"] == "mcq":
            assert [o["text"] for o in item["options"]] == question["options"]
            assert [o["correct"] for o in item["options"]] == [
                i == question["answer_index"] for i in range(len(question["options"]))
            ]
            assert _plain(question["explanation"]) in item["options"][question["answer_index"]]["feedback"]
            assert all(o["feedback"] for o in item["options"])
            assert _plain(question["explanation"]) in item["general_feedback"]
        else:
            assert item["options"] == []
            assert question["model_answer"] in item["general_feedback"]
            assert all(point in item["general_feedback"] for point in question["rubric"])


def check_qti(body: bytes, questions: list[dict]) -> None:
    item_schema = etree.XMLSchema(etree.parse(str(SCHEMAS / "qtiv2p1" / "imsqti_v2p1.xsd")))
    manifest_schema = etree.XMLSchema(etree.parse(str(SCHEMAS / "imscp_v1p1.xsd")))
    with zipfile.ZipFile(io.BytesIO(body)) as package:
        manifest = etree.fromstring(package.read("imsmanifest.xml"))
        manifest_schema.assertValid(manifest)
        resources = manifest.findall(f"{CP}resources/{CP}resource")
        assert len(resources) == len(questions)
        assert {r.get("type") for r in resources} == {"imsqti_item_xmlv2p1"}
        for resource, question in zip(resources, questions, strict=True):
            assert resource.find(f"{CP}file").get("href") == resource.get("href")
            item = etree.fromstring(package.read(resource.get("href")))
            item_schema.assertValid(item)
            if question["type"] == "mcq":
                interaction = item.find(f"{QTI}itemBody/{QTI}choiceInteraction")
                assert interaction.findtext(f"{QTI}prompt") == _plain(question["question"])
                choices = interaction.findall(f"{QTI}simpleChoice")
                assert [c.text for c in choices] == question["options"]
                key = item.findtext(f"{QTI}responseDeclaration/{QTI}correctResponse/{QTI}value")
                assert [c.get("identifier") for c in choices].index(key) == question["answer_index"]
                feedback = {f.get("identifier"): f.text for f in item.findall(f"{QTI}modalFeedback")}
                assert _plain(question["explanation"]) in feedback[key]
            else:
                assert item.find(f".//{QTI}extendedTextInteraction") is not None
                rubric = " ".join(p.text or "" for p in item.findall(f"{QTI}itemBody/{QTI}rubricBlock/{QTI}p"))
                assert item.find(f"{QTI}itemBody/{QTI}rubricBlock").get("view") == "scorer"
                assert question["model_answer"] in rubric and all(p in rubric for p in question["rubric"])
                body_text = "\n".join(p.text or "" for p in item.findall(f"{QTI}itemBody/{QTI}p"))
                assert body_text == _plain(question["question"])


def check_aiken(body: bytes, questions: list[dict], skipped: int | None = None) -> None:
    parsed = read_aiken(body.decode())
    writable = [q for q in questions if q["type"] == "mcq" and not q["question"].startswith("A. ")]
    assert len(parsed) == len(writable)
    if skipped is not None:
        assert skipped == len(questions) - len(writable)
    for item, question in zip(parsed, writable, strict=True):
        assert item["text"] == " ".join(_plain(question["question"]).split())
        assert item["options"] == [" ".join(o.split()) for o in question["options"]]
        assert item["answer_index"] == question["answer_index"]


CHECKS = {"moodle": check_moodle, "gift": check_gift, "qti": check_qti}


@pytest.mark.parametrize("fmt", ["moodle", "gift", "qti"])
def test_export_parses_back_with_every_question_option_key_and_feedback(fmt: str) -> None:
    CHECKS[fmt](build(fmt, "exam-1", "Algorithms & {data}", QUESTIONS).body, QUESTIONS)


def test_aiken_export_keeps_mcqs_and_leaves_out_what_it_cannot_write() -> None:
    exported = build("aiken", "exam-1", "t", QUESTIONS)
    check_aiken(exported.body, QUESTIONS, exported.skipped)


def test_export_over_http_is_for_key_holders_only(client, course_exam, admin_token) -> None:  # noqa: F811
    exam_id, keyed = course_exam["exam_id"], course_exam["keyed"]
    academic = course_exam["academic"]["headers"]
    for fmt, media in (
        ("moodle", "application/xml"),
        ("gift", "text/plain"),
        ("qti", "application/zip"),
        ("aiken", "text/plain"),
    ):
        response = client.get(f"/exams/{exam_id}/export?format={fmt}", headers=academic)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(media)
        assert "attachment" in response.headers["content-disposition"]
        if fmt == "aiken":
            check_aiken(response.content, keyed["questions"], int(response.headers["x-export-skipped"]))
        else:
            CHECKS[fmt](response.content, keyed["questions"])
    assert client.get(f"/exams/{exam_id}/export?format=qti", headers=bearer(admin_token)).status_code == 200
    student = signed_in(client)
    place(client, student, course_exam["faculty"], 6)
    assert_problem(client.get(f"/exams/{exam_id}/export?format=moodle", headers=student["headers"]), 403)
    # After the student's own submit the keys are theirs to see, and so is the export.
    attempt = client.post(f"/exams/{exam_id}/attempts", headers=student["headers"]).json()
    client.post(f"/exams/{exam_id}/attempts/{attempt['id']}/submit", headers=student["headers"])
    run_jobs()
    assert client.get(f"/exams/{exam_id}/export?format=aiken", headers=student["headers"]).status_code == 200
    outsider = signed_in(client, "academic", admin_token)
    place(client, outsider, hierarchy(client)[1], 6)
    assert_problem(client.get(f"/exams/{exam_id}/export?format=moodle", headers=outsider["headers"]), 404)
    assert_problem(client.get(f"/exams/{exam_id}/export?format=docx", headers=academic), 422)
    assert_problem(client.get(f"/exams/{exam_id}/export?format=moodle"), 401)
