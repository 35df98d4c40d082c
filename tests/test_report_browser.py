"""Reports of a generate, a Pareto (bulk modulus) and a CSP run rendered in headless Chromium:
every figure drawn, no JavaScript error, no request outside the file, nothing wider than the page.

Needs Playwright (test extra) and a Chromium: $MATSEARCH_CHROMIUM, Playwright's own download, or a
system `chromium-headless-shell` / `chromium` (Debian: apt-get install chromium-headless-shell).
Screenshots go to $MATSEARCH_REPORT_SCREENSHOTS when it is set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from matsearch.report import make_report

FIGURES = {
    "generate": ["pareto", "objectives", "e_hull", "phase_diagram", "lineage"],
    "pareto": ["pareto", "objectives", "e_hull", "phase_diagram", "lineage"],
    "csp": ["csp", "pareto", "objectives", "e_hull", "phase_diagram", "lineage"],
}
# Plotting a few MB of embedded plotly.js takes seconds on a quiet machine and far longer on a loaded
# one: a generous limit, so that only a figure that never appears fails.
_LOADED_MACHINE_TIMEOUT_MS = 120_000
_SYSTEM_BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def _executable(playwright) -> str | None:
    """A Chromium to drive: $MATSEARCH_CHROMIUM, Playwright's download, or a system one."""
    if os.environ.get("MATSEARCH_CHROMIUM"):
        return os.environ["MATSEARCH_CHROMIUM"]
    bundled = Path(playwright.chromium.executable_path)
    if bundled.is_file():
        return str(bundled)
    return next((found for name in _SYSTEM_BROWSERS if (found := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (test extra)")
    with sync_api.sync_playwright() as playwright:
        executable = _executable(playwright)
        if executable is None:
            pytest.skip(
                "no Chromium found: set MATSEARCH_CHROMIUM, run `playwright install chromium`, or "
                "`apt-get install chromium-headless-shell`"
            )
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.mark.parametrize("kind", ["generate", "pareto", "csp"])
def test_report_renders_every_figure_in_chromium(kind: str, browser, request: pytest.FixtureRequest) -> None:
    run_dir = request.getfixturevalue(
        {"generate": "generate_run", "pareto": "bulk_modulus_run", "csp": "csp_run"}[kind]
    )
    path = make_report(run_dir)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(_LOADED_MACHINE_TIMEOUT_MS)
    errors: list[str] = []
    outside: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on(
        "request", lambda req: outside.append(req.url) if not req.url.startswith(("file:", "data:")) else None
    )
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # installed: `browser` ran

    page.goto(path.resolve().as_uri())
    for name in FIGURES[kind]:
        page.locator(f"#section-{name}").scroll_into_view_if_needed()
        try:
            page.wait_for_selector(f"#figure-{name} .main-svg", state="attached")
        except PlaywrightTimeout:
            section = page.inner_html(f"#section-{name}")[:2000]
            pytest.fail(f"figure {name!r} was never drawn; page errors {errors}; section: {section}")
    drawn = page.eval_on_selector_all(
        "section[data-figure]",
        "els => els.map(e => [e.dataset.figure, e.querySelectorAll('.main-svg').length,"
        " !!e.querySelector('.note')])",
    )
    assert [name for name, _, _ in drawn] == FIGURES[kind]
    assert all(svgs > 0 and not note for _, svgs, note in drawn), drawn
    points = page.locator("#figure-pareto .scatterlayer .point").count()
    assert points >= 3  # every relaxed candidate is a drawn marker
    width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"the page is wider than the window: {width}"
    assert errors == [] and outside == []
    shots = os.environ.get("MATSEARCH_REPORT_SCREENSHOTS")
    if shots:
        page.screenshot(path=str(Path(shots) / f"report-{kind}.png"), full_page=True)
    page.close()
