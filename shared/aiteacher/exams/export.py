"""LMS export of an exam with its keys: Moodle XML, GIFT, IMS QTI 2.1 (content package zip) and Aiken.

Every format escapes its own special characters: XML formats are built with ElementTree (which escapes
`<`, `&`, quotes) from text that is HTML-escaped where the format says the text is HTML; GIFT escapes
`~ = # { } :` and the backslash; Aiken has no escapes at all, so its lines are whitespace-collapsed and
an item that cannot be written unambiguously is left out (and counted). Characters XML 1.0 forbids are
dropped everywhere.
"""

from __future__ import annotations

import html
import io
import re
import zipfile
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

from sqlalchemy.orm import Session

from aiteacher.audit import audit
from aiteacher.enums import ExamStatus
from aiteacher.errors import Conflict, Forbidden
from aiteacher.security.tokens import Claims

FORMATS = ("moodle", "gift", "qti", "aiken")
QTI_NS = "http://www.imsglobal.org/xsd/imsqti_v2p1"
CP_NS = "http://www.imsglobal.org/xsd/imscp_v1p1"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_GIFT_SPECIAL = re.compile(r"([\\~=#{}:])")
LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Exported:
    body: bytes
    media_type: str
    filename: str
    skipped: int = 0


def export_exam(session: Session, caller: Claims, exam_id: str, fmt: str) -> Exported:
    from aiteacher.exams.service import keys_visible, visible_exam

    exam = visible_exam(session, caller, exam_id)
    if not keys_visible(session, caller, exam):
        audit("exam.export", "denied", actor=caller.sub, target=exam.id, format=fmt)
        raise Forbidden("Only those who see the answer keys can export an exam")
    if exam.status != ExamStatus.READY:
        raise Conflict("The exam is not ready yet", code="exam_not_ready")
    title = f"{exam.course or 'Exam'} {exam.topic or ''}".strip()
    exported = build(fmt, exam.id, title, list(exam.questions or []))
    audit("exam.export", "ok", actor=caller.sub, target=exam.id, format=fmt, skipped=exported.skipped)
    return exported


def build(fmt: str, exam_id: str, title: str, questions: list[dict[str, Any]]) -> Exported:
    if fmt == "moodle":
        return Exported(moodle_xml(title, questions), "application/xml", f"exam-{exam_id}.moodle.xml")
    if fmt == "gift":
        return Exported(gift(questions).encode(), "text/plain; charset=utf-8", f"exam-{exam_id}.gift.txt")
    if fmt == "qti":
        return Exported(qti_package(exam_id, title, questions), "application/zip", f"exam-{exam_id}.qti.zip")
    if fmt == "aiken":
        text, skipped = aiken(questions)
        return Exported(text.encode(), "text/plain; charset=utf-8", f"exam-{exam_id}.aiken.txt", skipped)
    raise ValueError(f"unknown export format {fmt!r}; use one of {FORMATS}")


# --- shared text ---------------------------------------------------------------------------------
def clean(text: Any) -> str:
    return _XML_FORBIDDEN.sub("", str(text or ""))


def source_note(question: dict[str, Any]) -> str:
    source = question.get("source") or {}
    if not source.get("page"):
        return ""
    return f"Source: {clean(source.get('title') or 'course material')}, p. {source['page']}"


def theory_grader_info(question: dict[str, Any]) -> str:
    lines = [f"Model answer: {clean(question['model_answer'])}", "Rubric:"]
    lines += [f"- {clean(point)}" for point in question.get("rubric") or []]
    note = source_note(question)
    return "\n".join(lines + ([note] if note else []))


def _html(text: str) -> str:
    """Plain text as an HTML fragment (escaped, line breaks kept)."""
    return html.escape(clean(text), quote=False).replace("\n", "<br>\n")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _text_block(parent: ET.Element, tag: str, text: str, fmt: str = "html") -> None:
    block = _sub(parent, tag, format=fmt)
    _sub(block, "text", _html(text) if fmt == "html" else clean(text))


def _serialize(root: ET.Element) -> bytes:
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# --- Moodle XML ----------------------------------------------------------------------------------
def moodle_xml(title: str, questions: list[dict[str, Any]]) -> bytes:
    quiz = ET.Element("quiz")
    category = _sub(quiz, "question", type="category")
    _sub(_sub(category, "category"), "text", f"$course$/AI-Teacher/{clean(title).replace('/', '-')}")
    for number, question in enumerate(questions, start=1):
        if question["type"] == "mcq":
            item = _sub(quiz, "question", type="multichoice")
            _sub(_sub(item, "name"), "text", f"Q{number}")
            _text_block(item, "questiontext", question["question"])
            general = "\n".join(filter(None, [clean(question.get("explanation")), source_note(question)]))
            _text_block(item, "generalfeedback", general)
            for tag, value in (
                ("defaultgrade", "1"),
                ("penalty", "0.3333333"),
                ("hidden", "0"),
                ("single", "true"),
                ("shuffleanswers", "true"),
                ("answernumbering", "abc"),
            ):
                _sub(item, tag, value)
            _text_block(item, "correctfeedback", "Correct.")
            _text_block(item, "partiallycorrectfeedback", "Partially correct.")
            _text_block(item, "incorrectfeedback", "Incorrect.")
            for index, option in enumerate(question["options"]):
                correct = index == question["answer_index"]
                answer = _sub(item, "answer", fraction="100" if correct else "0", format="html")
                _sub(answer, "text", _html(option))
                _text_block(answer, "feedback", option_feedback(question, index))
        else:
            item = _sub(quiz, "question", type="essay")
            _sub(_sub(item, "name"), "text", f"Q{number}")
            _text_block(item, "questiontext", question["question"])
            _text_block(item, "generalfeedback", clean(question["model_answer"]))
            for tag, value in (
                ("defaultgrade", "1"),
                ("penalty", "0"),
                ("hidden", "0"),
                ("responseformat", "editor"),
                ("responserequired", "1"),
                ("responsefieldlines", "15"),
                ("attachments", "0"),
                ("attachmentsrequired", "0"),
            ):
                _sub(item, tag, value)
            _text_block(item, "graderinfo", theory_grader_info(question))
            _text_block(item, "responsetemplate", "")
    return _serialize(quiz)


def option_feedback(question: dict[str, Any], index: int) -> str:
    if index == question["answer_index"]:
        return f"Correct. {clean(question.get('explanation'))}".strip()
    note = source_note(question)
    return f"Not correct. {note}".strip() if note else "Not correct."


# --- GIFT ----------------------------------------------------------------------------------------
def gift_escape(text: Any) -> str:
    """GIFT's specials escaped with a backslash; line breaks as `\\n` so no blank line can split an item."""
    escaped = _GIFT_SPECIAL.sub(r"\\\1", clean(text))
    return escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")


def gift(questions: list[dict[str, Any]]) -> str:
    blocks = []
    for number, question in enumerate(questions, start=1):
        head = f"::Q{number}::{gift_escape(question['question'])}"
        if question["type"] == "mcq":
            lines = [head + " {"]
            for index, option in enumerate(question["options"]):
                mark = "=" if index == question["answer_index"] else "~"
                lines.append(f"\t{mark}{gift_escape(option)}#{gift_escape(option_feedback(question, index))}")
            general = " ".join(filter(None, [clean(question.get("explanation")), source_note(question)]))
            lines.append(f"\t####{gift_escape(general)}")
            lines.append("}")
        else:
            lines = [head + " {", f"\t####{gift_escape(theory_grader_info(question))}", "}"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


# --- Aiken ---------------------------------------------------------------------------------------
def _one_line(text: Any) -> str:
    return " ".join(clean(text).split())


def aiken(questions: list[dict[str, Any]]) -> tuple[str, int]:
    """MCQs only. A line that would read as an option or an answer line is left out with its item."""
    blocks, skipped = [], 0
    option_like = re.compile(r"^([A-J][.)]\s|ANSWER:)", re.IGNORECASE)
    for question in questions:
        if question["type"] != "mcq":
            skipped += 1
            continue
        stem, options = _one_line(question["question"]), [_one_line(o) for o in question["options"]]
        if not stem or option_like.match(stem) or any(not o for o in options) or len(options) > len(LETTERS):
            skipped += 1
            continue
        lines = [stem] + [f"{LETTERS[i]}. {option}" for i, option in enumerate(options)]
        lines.append(f"ANSWER: {LETTERS[question['answer_index']]}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else ""), skipped


# --- IMS QTI 2.1 ---------------------------------------------------------------------------------
def _q(tag: str) -> str:
    return f"{{{QTI_NS}}}{tag}"


def _qsub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    return _sub(parent, _q(tag), text, **attrs)


def _paragraphs(parent: ET.Element, text: str) -> None:
    for line in clean(text).split("\n") or [""]:
        _qsub(parent, "p", line)


def qti_item(identifier: str, title: str, question: dict[str, Any]) -> bytes:
    ET.register_namespace("", QTI_NS)
    ET.register_namespace("xsi", XSI_NS)
    item = ET.Element(
        _q("assessmentItem"),
        {
            f"{{{XSI_NS}}}schemaLocation": f"{QTI_NS} http://www.imsglobal.org/xsd/qti/qtiv2p1/imsqti_v2p1.xsd",
            "identifier": identifier,
            "title": clean(title),
            "adaptive": "false",
            "timeDependent": "false",
        },
    )
    if question["type"] == "mcq":
        declaration = _qsub(
            item, "responseDeclaration", identifier="RESPONSE", cardinality="single", baseType="identifier"
        )
        _qsub(_qsub(declaration, "correctResponse"), "value", f"choice-{question['answer_index']}")
    else:
        _qsub(item, "responseDeclaration", identifier="RESPONSE", cardinality="single", baseType="string")
    score = _qsub(item, "outcomeDeclaration", identifier="SCORE", cardinality="single", baseType="float")
    _qsub(_qsub(score, "defaultValue"), "value", "0")
    if question["type"] == "mcq":
        _qsub(item, "outcomeDeclaration", identifier="FEEDBACK", cardinality="single", baseType="identifier")
    body = _qsub(item, "itemBody")
    if question["type"] == "mcq":
        interaction = _qsub(body, "choiceInteraction", responseIdentifier="RESPONSE", shuffle="true", maxChoices="1")
        _qsub(interaction, "prompt", clean(question["question"]))
        for index, option in enumerate(question["options"]):
            _qsub(interaction, "simpleChoice", clean(option), identifier=f"choice-{index}")
        processing = _qsub(item, "responseProcessing")
        condition = _qsub(processing, "responseCondition")
        when = _qsub(condition, "responseIf")
        match = _qsub(when, "match")
        _qsub(match, "variable", identifier="RESPONSE")
        _qsub(match, "correct", identifier="RESPONSE")
        _qsub(_qsub(when, "setOutcomeValue", identifier="SCORE"), "baseValue", "1", baseType="float")
        otherwise = _qsub(condition, "responseElse")
        _qsub(_qsub(otherwise, "setOutcomeValue", identifier="SCORE"), "baseValue", "0", baseType="float")
        _qsub(_qsub(processing, "setOutcomeValue", identifier="FEEDBACK"), "variable", identifier="RESPONSE")
        for index in range(len(question["options"])):
            feedback = _qsub(
                item, "modalFeedback", outcomeIdentifier="FEEDBACK", identifier=f"choice-{index}", showHide="show"
            )
            feedback.text = option_feedback(question, index)
    else:
        rubric = _qsub(body, "rubricBlock", view="scorer")
        _paragraphs(rubric, theory_grader_info(question))
        _paragraphs(body, question["question"])
        _qsub(body, "extendedTextInteraction", responseIdentifier="RESPONSE", expectedLines="15")
    return _serialize(item)


def qti_manifest(exam_id: str, title: str, hrefs: list[tuple[str, str]]) -> bytes:
    ET.register_namespace("", CP_NS)
    ET.register_namespace("xsi", XSI_NS)
    manifest = ET.Element(
        f"{{{CP_NS}}}manifest",
        {
            f"{{{XSI_NS}}}schemaLocation": f"{CP_NS} http://www.imsglobal.org/xsd/imscp_v1p1.xsd",
            "identifier": f"MANIFEST-{exam_id}",
        },
    )
    metadata = _sub(manifest, f"{{{CP_NS}}}metadata")
    _sub(metadata, f"{{{CP_NS}}}schema", "QTIv2.1 Package")
    _sub(metadata, f"{{{CP_NS}}}schemaversion", "1.0.0")
    _sub(manifest, f"{{{CP_NS}}}organizations")
    resources = _sub(manifest, f"{{{CP_NS}}}resources")
    for identifier, href in hrefs:
        resource = _sub(resources, f"{{{CP_NS}}}resource", identifier=identifier, type="imsqti_item_xmlv2p1", href=href)
        _sub(resource, f"{{{CP_NS}}}file", href=href)
    del title  # the package title lives in each item's `title`
    return _serialize(manifest)


def qti_package(exam_id: str, title: str, questions: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    hrefs = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        for number, question in enumerate(questions, start=1):
            identifier = f"item-{number}"
            href = f"items/{identifier}.xml"
            package.writestr(href, qti_item(identifier, f"{clean(title)} Q{number}", question))
            hrefs.append((identifier, href))
        package.writestr("imsmanifest.xml", qti_manifest(exam_id, title, hrefs))
    return buffer.getvalue()
