# ruff: noqa: F811  (the dev_server fixture is imported, and pytest passes it by name)
"""The web app in a real browser (Debian's Chromium driven by Playwright) against `aiteacher dev`, as
a newcomer would use it: an academic uploads a PDF and watches it become ready, a student registers,
places themselves, searches, asks the tutor and opens the cited page. Every main screen is saved as a
screenshot (SCREENSHOT_DIR, default .data/screenshots) and checked with axe-core: 0 serious or critical
violations.

The dev server always runs the embedded defaults, so this module runs once, in the embedded-defaults
pass of CI (it is skipped when DATABASE_URL points the rest of the suite at a real server)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_dev_server import ADMIN, dev_server  # noqa: F401  (the fixture)
from tests.helpers import make_pdf

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("SCREENSHOT_DIR", ".data/screenshots"))
PHRASE = "The Quandrel pivot rule picks the median of three sampled keys before partitioning."

if os.environ.get("DATABASE_URL"):
    pytest.skip("browser tests run in the embedded-defaults pass only", allow_module_level=True)
if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium", pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield instance
        instance.close()


def _page(browser, dev_server, *, width: int = 1280, height: int = 900):  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=dev_server["base"], viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The browser logs every non-2xx reply as a console error: those are the API's answers, not the app's faults.
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.errors = errors  # type: ignore[attr-defined]
    return page


def check_screen(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """A screenshot for the artefacts, and axe-core with no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    results = Axe().run(
        page,
        options={
            "resultTypes": ["violations"],
            "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21aa", "wcag22aa"]},
        },
    )
    serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not serious, f"{name}: " + "; ".join(f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in serious)
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def sign_in(page, email: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/#/login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()


ACADEMIC_PASSWORD = "a long and unusual passphrase"


def academic(dev_server, faculty_index: int) -> str:  # type: ignore[no-untyped-def]
    """An academic registered by the admin and placed in a faculty (over the API: the admin screen is tested
    on its own)."""
    import httpx

    base = dev_server["base"]
    admin = httpx.post(base + "/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]}).json()
    auth = {"Authorization": f"Bearer {admin['access_token']}"}
    email = f"prof-{time.time_ns()}@example.edu"
    created = httpx.post(
        base + "/auth/register",
        headers=auth,
        json={"email": email, "password": ACADEMIC_PASSWORD, "full_name": "Prof", "role": "academic"},
    )
    assert created.status_code == 201, created.text
    faculty = httpx.get(base + "/faculties").json()[faculty_index]
    placed = httpx.put(
        base + f"/users/{created.json()['id']}/placement",
        headers=auth,
        json={
            "faculty_id": faculty["id"],
            "department_id": faculty["departments"][0]["id"],
            "semester_id": faculty["semesters"][0]["id"],
        },
    )
    assert placed.status_code == 200, placed.text
    return email


@pytest.fixture(scope="module")
def material(browser, dev_server, tmp_path_factory) -> dict:  # type: ignore[no-untyped-def]
    """The academic side: an admin uploads a lecture by drag-and-drop-free file picking and waits for ready."""
    pdf = tmp_path_factory.mktemp("upload") / "quicksort-week-3.pdf"
    pdf.write_bytes(
        make_pdf(
            [
                [
                    "Sorting, week 3.",
                    "Quicksort partitions an array around a pivot element and sorts both parts recursively.",
                    "Mergesort splits the array in halves, sorts each half and merges the halves in linear time.",
                    "Heapsort builds a binary heap and repeatedly extracts the maximum element.",
                ],
                [
                    PHRASE,
                    "A stable sorting algorithm keeps equal keys in their original order.",
                    "Insertion sort is efficient for small or nearly sorted inputs.",
                ],
            ],
            title="Quicksort week 3",
        )
    )
    email = academic(dev_server, faculty_index=0)
    page = _page(browser, dev_server)
    sign_in(page, email, ACADEMIC_PASSWORD)
    page.goto("/#/documents")
    page.get_by_label("Course", exact=True).fill("algorithms")
    page.get_by_label("Semester id").fill("3")
    page.get_by_label("Files (PDF, PPTX, DOCX, Markdown, HTML)").set_input_files(str(pdf))
    page.get_by_role("button", name="Upload").click()
    row = page.locator("table.documents tbody tr", has_text="algorithms").first
    row.wait_for()
    deadline = time.monotonic() + 120
    while row.get_attribute("data-status") not in ("ready", "failed") and time.monotonic() < deadline:
        page.wait_for_timeout(300)
    assert row.get_attribute("data-status") == "ready", row.inner_text()
    check_screen(page, "academic-documents")

    page.goto("/#/exams")
    page.get_by_label("Multiple-choice questions").fill("2")
    page.get_by_label("Theory questions").fill("1")
    page.get_by_label("Course (optional)").fill("algorithms")
    page.get_by_label("Semester id (academics)").fill("3")
    page.get_by_role("button", name="Generate exam").click()
    page.get_by_role("heading", name="Results and export").wait_for(timeout=90_000)
    for label, marker in (("Moodle XML", b"<quiz"), ("GIFT", b"::"), ("QTI 2.1 (zip)", b"PK"), ("Aiken", b"ANSWER:")):
        with page.expect_download() as download:
            page.get_by_role("button", name=label).click()
        assert marker in Path(download.value.path()).read_bytes()
    check_screen(page, "academic-exam")
    page.context.close()
    return {"pdf": pdf}


def test_a_student_registers_places_searches_and_asks_the_tutor(browser, dev_server, material) -> None:
    page = _page(browser, dev_server)
    page.goto("/")
    check_screen(page, "sign-in")
    page.get_by_role("link", name="Create an account").click()
    email = f"student-{time.time_ns()}@example.edu"
    page.get_by_label("Full name").fill("Grace Student")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill("a long and unusual passphrase")
    page.get_by_role("button", name="Create account").click()
    page.get_by_role("heading", name="Your profile").wait_for()
    page.get_by_label("Faculty").select_option(index=1)
    page.get_by_label("Department").select_option(index=1)
    page.get_by_label("Semester").select_option(label="Semester 3")
    check_screen(page, "profile")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("heading", name="Tutor").wait_for()

    page.get_by_role("link", name="Search").click()
    page.get_by_label("Search your material").fill("how does the pivot rule work")
    page.get_by_role("button", name="Search").click()
    page.locator(".hits li").first.wait_for()
    assert "Quandrel" in page.locator(".hits").inner_text()
    check_screen(page, "search")

    page.get_by_role("link", name="Tutor").click()
    page.get_by_label("Your question").fill("What does the Quandrel pivot rule pick?")
    with page.expect_response(lambda r: r.url.endswith("/chat")) as chat:
        page.get_by_role("button", name="Ask").click()
    assert chat.value.request.headers["accept"] == "text/event-stream"
    page.locator(".answer-meta").first.wait_for()
    assert "Quicksort week 3, p. 2" in page.locator(".answer-meta .sources").inner_text()
    check_screen(page, "tutor")
    page.locator(".answer-meta a.citation").first.click()  # open the cited page: its picture and its text
    dialog = page.get_by_role("dialog")
    dialog.locator("img").wait_for()
    assert PHRASE.split()[1] in dialog.locator(".page-text").inner_text()
    assert dialog.locator("img").evaluate("img => img.naturalWidth") > 100
    check_screen(page, "cited-page")
    dialog.get_by_role("button", name="Close").click()

    page.get_by_role("link", name="Exams").click()
    page.get_by_label("Multiple-choice questions").fill("2")
    page.get_by_label("Theory questions").fill("0")
    page.get_by_label("Course (optional)").fill("algorithms")
    check_screen(page, "exams")
    page.get_by_role("button", name="Generate practice exam").click()
    page.get_by_role("button", name="Submit answers").wait_for(timeout=90_000)
    page.locator("fieldset.question").first.get_by_role("radio").first.check()
    check_screen(page, "exam-attempt")
    page.get_by_role("button", name="Submit answers").click()
    page.get_by_role("heading", name="Your score").wait_for()
    assert page.locator(".feedback").count() >= 1
    assert page.locator(".feedback a.citation").count() >= 1  # feedback links the source page
    check_screen(page, "exam-result")


def test_the_app_fits_a_phone_screen(browser, dev_server) -> None:
    page = _page(browser, dev_server, width=360, height=740)
    page.goto("/#/login")
    page.get_by_role("button", name="Sign in").wait_for()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    check_screen(page, "sign-in-phone")


def test_user_text_is_rendered_as_text_never_as_html(browser, dev_server) -> None:
    page = _page(browser, dev_server)
    page.goto("/#/login")
    page.get_by_label("Email", exact=True).fill("nobody@example.edu")
    page.get_by_label("Password", exact=True).fill("<img src=x onerror=window.pwned=1>")
    page.get_by_role("button", name="Sign in").click()
    page.locator("form .error").wait_for()
    assert page.evaluate("window.pwned === undefined")
    assert "Invalid" in page.locator("form .error").inner_text() or page.locator("form .error").inner_text()


def test_static_assets_are_hashed_cached_and_the_page_has_a_strict_csp(dev_server) -> None:
    import re

    import httpx

    index = httpx.get(dev_server["base"] + "/")
    assert index.status_code == 200 and index.headers["cache-control"] == "no-cache"
    csp = index.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self' 'sha256-" in csp and "unsafe-inline" not in csp
    hashed = re.search(r'src="(/static/app\.js\?v=[0-9a-f]+)"', index.text).group(1)
    asset = httpx.get(dev_server["base"] + hashed)
    assert asset.headers["cache-control"].endswith("immutable")
    assert asset.headers["content-type"].startswith("text/javascript")
    assert httpx.get(dev_server["base"] + "/static/app.js").headers["cache-control"] == "no-cache"
    assert httpx.get(dev_server["base"] + "/static/../../shared/aiteacher/config.py").status_code == 404
    assert "https://" not in index.text  # nothing from a CDN


def test_an_admin_finds_a_user_changes_the_role_and_deactivates(browser, dev_server) -> None:
    import httpx

    email = f"mover-{time.time_ns()}@example.edu"
    assert (
        httpx.post(
            dev_server["base"] + "/auth/register",
            json={"email": email, "password": "a long and unusual passphrase", "full_name": "Moved Person"},
        ).status_code
        == 201
    )
    page = _page(browser, dev_server)
    sign_in(page, *ADMIN)
    page.goto("/#/admin/users")
    page.get_by_label("Search name or email").fill(email)
    page.get_by_role("button", name="Find").click()
    row = page.locator(f'tr[data-email="{email}"]')
    row.wait_for()
    check_screen(page, "admin-users")
    row.get_by_label(f"Role of {email}").select_option("academic")
    row.get_by_role("button", name="Set role").click()
    page.locator(".status.ok").wait_for()
    row = page.locator(f'tr[data-email="{email}"]')
    row.get_by_role("button", name="Deactivate").click()
    page.locator(f'tr[data-email="{email}"]', has_text="deactivated").wait_for()
    login = httpx.post(
        dev_server["base"] + "/auth/login", json={"email": email, "password": "a long and unusual passphrase"}
    )
    assert login.status_code in (401, 403)


def test_an_academic_sets_the_enrolment_policy_and_rotates_the_key(browser, dev_server) -> None:
    import httpx

    base = dev_server["base"]
    email = academic(dev_server, faculty_index=1)
    faculty = httpx.get(base + "/faculties").json()[1]
    page = _page(browser, dev_server)
    sign_in(page, email, ACADEMIC_PASSWORD)
    page.goto("/#/profile")
    page.get_by_role("heading", name=f"Enrolment for {faculty['name']}").wait_for()
    page.get_by_label("Policy").select_option("key")
    page.get_by_role("button", name="Save policy").click()
    page.locator(".new-key code").wait_for()
    first_key = page.locator(".new-key code").inner_text()
    page.get_by_role("button", name="Rotate key").click()
    page.locator(".new-key code", has_not_text=first_key).wait_for()
    check_screen(page, "academic-enrolment")
    assert httpx.get(base + "/faculties").json()[1]["enrolment_policy"] == "key"
    page.get_by_label("Policy").select_option("open")
    page.get_by_role("button", name="Save policy").click()
    page.get_by_text("No key is set.").or_(page.get_by_text("A key is set")).first.wait_for()


def test_problem_replies_are_shown_as_messages_and_a_dead_session_returns_to_sign_in(browser, dev_server) -> None:
    import json

    import httpx

    email = f"errors-{time.time_ns()}@example.edu"
    assert (
        httpx.post(
            dev_server["base"] + "/auth/register",
            json={"email": email, "password": ACADEMIC_PASSWORD, "full_name": "Err Student"},
        ).status_code
        == 201
    )
    page = _page(browser, dev_server)
    page.errors.clear()  # type: ignore[attr-defined]
    sign_in(page, email, ACADEMIC_PASSWORD)

    def problem(status: int, code: str, detail: str, **headers: str):  # type: ignore[no-untyped-def]
        body = json.dumps({"type": "about:blank", "title": code, "status": status, "detail": detail, "code": code})
        return lambda route: route.fulfill(
            status=status, body=body, headers={"Content-Type": "application/problem+json", **headers}
        )

    page.goto("/#/search")
    for status, code, detail, headers, shown in (
        (429, "rate_limited", "Too many requests.", {"Retry-After": "7"}, "Try again in 7 s."),
        (503, "unavailable", "The database is unreachable.", {}, "temporarily unavailable"),
        (409, "profile_incomplete", "Choose your faculty and semester first.", {}, "faculty and semester"),
        (403, "forbidden", "Not allowed.", {}, "Not allowed."),
    ):
        page.route("**/search", problem(status, code, detail, **headers))
        page.get_by_label("Search your material").fill("anything")
        page.get_by_role("button", name="Search").click()
        page.locator(".results .error", has_text=shown).wait_for()
        page.unroute("**/search")
    check_screen(page, "search-error")
    # Every token refused and the refresh token too: back to the sign-in screen, with a message.
    page.route("**/me", problem(401, "invalid_token", "Sign in again."))
    page.route("**/auth/refresh", problem(401, "invalid_token", "Sign in again."))
    page.goto("/#/profile")
    page.get_by_role("button", name="Sign in").wait_for()
    assert "session has ended" in page.locator("#status").inner_text()


def test_signing_in_works_from_the_keyboard_alone(browser, dev_server) -> None:
    import httpx

    email = f"keys-{time.time_ns()}@example.edu"
    assert (
        httpx.post(
            dev_server["base"] + "/auth/register",
            json={"email": email, "password": ACADEMIC_PASSWORD, "full_name": "Keyboard User"},
        ).status_code
        == 201
    )
    page = _page(browser, dev_server)
    page.goto("/#/login")
    page.get_by_role("button", name="Sign in").wait_for()
    _wait_for_focus_on_heading(page)  # a new screen starts at its heading (focus moves once it is rendered)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "email"
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "password"
    page.keyboard.type(ACADEMIC_PASSWORD)
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Sign out").wait_for()
    _wait_for_focus_on_heading(page)  # focus moves to the new screen's heading


def _wait_for_focus_on_heading(page) -> None:  # type: ignore[no-untyped-def]
    """Focus moves to a screen's heading once the screen is rendered (polled: the page's CSP forbids the
    string evaluation wait_for_function would use)."""
    for _ in range(200):
        if page.evaluate("document.activeElement && document.activeElement.tagName") == "H1":
            return
        page.wait_for_timeout(50)
    assert page.evaluate("document.activeElement && document.activeElement.tagName") == "H1"
