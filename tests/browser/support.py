"""What the end-to-end and accessibility tests share: axe-core, well-formed HTML, keyboard focus.

axe-core is the npm package, installed on first use into the git-ignored `.axe/` folder. It is
injected with an init script: Playwright runs those through the DevTools protocol, so the
app's strict Content-Security-Policy (script-src 'self') stays on while axe runs.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
AXE_DIR = ROOT / ".axe"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
AXE_PACKAGE = "axe-core@4"
# WCAG 2.1 A and AA (axe's tags); best practices are not asserted.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
IMPACTS = ("critical", "serious", "moderate", "minor")
BLOCKING_IMPACTS = ("serious", "critical")
PASSWORD = "test-password-123"  # tests.factories.UserFactory's


@functools.cache
def axe_source() -> str:
    """axe.min.js's text; `npm install` fetches it when the folder is missing."""
    if not AXE_JS.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to install axe-core for the accessibility tests.")
        subprocess.run(
            [npm, "install", "--prefix", str(AXE_DIR), AXE_PACKAGE, "--no-audit", "--no-fund"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return AXE_JS.read_text(encoding="utf-8")


@dataclass
class AxeResult:
    name: str
    url: str
    counts: Counter[str]
    rules: list[str]
    seconds: float

    def line(self) -> str:
        counts = ", ".join(f"{self.counts[i]} {i}" for i in IMPACTS)
        rules = f"  [{', '.join(self.rules)}]" if self.rules else ""
        return f"{self.name:<44} {urlsplit(self.url).path:<40} {counts}{rules}"


# Every page state axe checked in this run, for the summary at the end (conftest.py).
AXE_RESULTS: list[AxeResult] = []


def run_axe(page, name: str) -> list[dict]:
    """axe-core's WCAG 2.1 A/AA violations on the page now; recorded for the run's summary."""
    started = time.perf_counter()
    violations = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.slice(0, 5).map(n => n.target.join(' ')),
                count: v.nodes.length,
            }));
        }""",
        AXE_TAGS,
    )
    result = AxeResult(
        name=name,
        url=page.url,
        counts=Counter(v["impact"] for v in violations),
        rules=[f"{v['impact']}: {v['id']} x{v['count']}" for v in violations],
        seconds=time.perf_counter() - started,
    )
    AXE_RESULTS.append(result)
    print(f"\naxe {result.line()} ({result.seconds:.1f} s)")
    for v in violations:
        print(f"    {v['impact']}: {v['id']} ({v['count']}x) {v['help']} {v['targets']}")
    return violations


def axe_summary() -> list[str]:
    """One line per page state checked, then the totals by impact."""
    if not AXE_RESULTS:
        return []
    totals = sum((r.counts for r in AXE_RESULTS), Counter())
    seconds = sum(r.seconds for r in AXE_RESULTS)
    return [
        *(r.line() for r in AXE_RESULTS),
        f"{len(AXE_RESULTS)} page states: "
        + ", ".join(f"{totals[i]} {i}" for i in IMPACTS)
        + f" (axe ran {seconds:.0f} s in all)",
    ]


def blocking(violations: list[dict]) -> list[dict]:
    return [v for v in violations if v["impact"] in BLOCKING_IMPACTS]


class _HtmlCheck(HTMLParser):
    """Duplicate ids and a <form> inside a <form>, as the server sent them (a browser's DOM
    silently drops a nested form tag, so this reads the raw HTML)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: Counter[str] = Counter()
        self.form_depth = 0
        self.nested_forms = 0

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" and value:
                self.ids[value] += 1
        if tag == "form":
            if self.form_depth:
                self.nested_forms += 1
            self.form_depth += 1

    def handle_endtag(self, tag):
        if tag == "form" and self.form_depth:
            self.form_depth -= 1


def html_problems(html: str) -> list[str]:
    check = _HtmlCheck()
    check.feed(html)
    check.close()
    problems = [f"duplicate id {i!r} ({n}x)" for i, n in check.ids.items() if n > 1]
    if check.nested_forms:
        problems.append(f"{check.nested_forms} form(s) nested in a form")
    return problems


class HtmlWatch:
    """Checks every HTML document the page loads; `problems` maps URL -> what is wrong."""

    def __init__(self, page):
        self.problems: dict[str, list[str]] = {}
        self.checked = 0
        page.on("response", self._on_response)

    def _on_response(self, response):
        request = response.request
        if request.resource_type != "document" or not (
            200 <= response.status < 300 or response.status in (400, 409)
        ):
            return
        if "text/html" not in (response.headers.get("content-type") or ""):
            return
        try:
            body = response.text()
        except Exception:  # noqa: BLE001 - the page navigated on before the body was read
            return
        self.checked += 1
        found = html_problems(body)
        if found:
            self.problems[f"{request.method} {response.url}"] = found


FOCUS_INDICATOR = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return {tag: 'body', visible: false};
    if (el.type === 'date' && !el.matches(':focus')) {
        // The date field's own calendar button has the focus: Chromium draws its focus ring.
        return {tag: 'input', label: 'calendar button', visible: true};
    }
    const style = getComputedStyle(el);
    const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
    const shadow = style.boxShadow && style.boxShadow !== 'none';
    return {
        tag: el.tagName.toLowerCase(),
        label: (el.getAttribute('aria-label') || el.innerText || el.name || el.id || '')
            .trim().slice(0, 40),
        visible: Boolean(outline || shadow),
        focus: el.matches(':focus'), focusVisible: el.matches(':focus-visible'),
        outline: `${style.outlineStyle} ${style.outlineWidth}`, shadow: style.boxShadow,
    };
}"""


# Is the element above where sequential focus navigation starts (the focused element, else the
# URL's #fragment target)?
PRECEDES_FOCUS = """(el) => {
    let start = document.activeElement;
    if (!start || start === document.body) {
        start = location.hash ? document.getElementById(location.hash.slice(1)) : null;
    }
    if (!start || start === el) return false;
    return Boolean(start.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_PRECEDING);
}"""


class Keyboard:
    """Moves the focus with Tab / Shift+Tab only and checks a visible indicator at each stop."""

    def __init__(self, page, limit: int = 250):
        self.page = page
        self.limit = limit
        self.stops = 0

    def _check_stop(self):
        info = self.page.evaluate(FOCUS_INDICATOR)
        self.stops += 1
        if info["tag"] != "body":
            assert info["visible"], f"no visible focus indicator on {info}"

    def tab_to(self, locator, backwards: bool | None = None):
        """Tab (or Shift+Tab, when the target is above the focus) until it has the focus."""
        handle = locator.element_handle()
        if backwards is None:
            backwards = self.page.evaluate(PRECEDES_FOCUS, handle)
        key = "Shift+Tab" if backwards else "Tab"
        for _ in range(self.limit):
            self.page.keyboard.press(key)
            self._check_stop()
            if self.page.evaluate("(el) => document.activeElement === el", handle):
                return
        raise AssertionError(f"{locator} was not reached with {key} in {self.limit} presses")


def _reset_sequences() -> None:
    from django.apps import apps
    from django.core.management.color import no_style
    from django.db import connection

    statements = connection.ops.sequence_reset_sql(no_style(), apps.get_models())
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


@pytest.fixture(scope="module", autouse=True)
def sequences_follow_restored_rows(django_db_setup, django_db_blocker):
    """PostgreSQL: rows put back with their ids (conftest's committed_state_restored) leave the
    id sequences behind, and the next insert collides. Import this autouse fixture into a
    module: it resets them before the module's tests and after the rows are put back."""
    with django_db_blocker.unblock():
        _reset_sequences()
    yield
    with django_db_blocker.unblock():
        _reset_sequences()


# The page as a screen reader's heading and landmark lists show it: the headings in document
# order (level, text), and the landmarks (role, accessible name). Hidden elements are left out.
_OUTLINE = """() => {
    const shown = el => !el.closest('[hidden], [aria-hidden=true]') && el.getClientRects().length;
    const name = el => {
        const by = el.getAttribute('aria-labelledby');
        if (by) return by.split(/\\s+/).map(id => document.getElementById(id)?.innerText || '')
            .join(' ').trim();
        return (el.getAttribute('aria-label') || '').trim();
    };
    const headings = [...document.querySelectorAll('h1, h2, h3, h4, h5, h6, [role=heading]')]
        .filter(shown)
        .map(h => ({
            level: Number(h.getAttribute('aria-level') || h.tagName.slice(1)),
            text: h.innerText.replace(/\\s+/g, ' ').trim(),
        }));
    const sectioning = 'article, aside, main, nav, section';
    const landmarks = [];
    for (const el of document.querySelectorAll('header, nav, main, footer, [role]')) {
        let role = el.getAttribute('role') || {
            HEADER: 'banner', NAV: 'navigation', MAIN: 'main', FOOTER: 'contentinfo',
        }[el.tagName];
        if ((el.tagName === 'HEADER' || el.tagName === 'FOOTER') && !el.getAttribute('role')
            && el.parentElement.closest(sectioning)) continue;  // not a landmark there
        if (['banner', 'navigation', 'main', 'contentinfo', 'search', 'region', 'complementary']
            .includes(role) && shown(el)) landmarks.push({role, name: name(el)});
    }
    return {headings, landmarks};
}"""


def outline(page) -> dict:
    return page.evaluate(_OUTLINE)


PAGE_LANDMARKS = ("banner", "navigation", "main")


def outline_problems(found: dict, *, landmarks: tuple[str, ...] = PAGE_LANDMARKS) -> list[str]:
    """One h1, first; no level skipped going down; the landmarks expected (one main, the site's
    banner, a navigation; the print summary has no banner), every navigation named."""
    problems = []
    levels = [h["level"] for h in found["headings"]]
    if levels.count(1) != 1:
        problems.append(f"{levels.count(1)} h1 headings")
    if levels and levels[0] != 1:
        problems.append(f"the first heading is h{levels[0]}: {found['headings'][0]['text']!r}")
    for before, heading in zip(found["headings"], found["headings"][1:], strict=False):
        if heading["level"] > before["level"] + 1:
            problems.append(
                f"h{before['level']} {before['text']!r} is followed by "
                f"h{heading['level']} {heading['text']!r}"
            )
    roles = Counter(landmark["role"] for landmark in found["landmarks"])
    problems += [f"no {role} landmark" for role in landmarks if not roles[role]]
    if roles["main"] > 1:
        problems.append(f"{roles['main']} main landmarks")
    problems += [
        "a navigation landmark without a name"
        for landmark in found["landmarks"]
        if landmark["role"] == "navigation" and not landmark["name"]
    ]
    return problems
