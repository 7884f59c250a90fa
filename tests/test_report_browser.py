"""The ``durability report`` page in a real browser: Debian's headless
Chromium opens the file, runs its script, and prints the DOM (``--dump-dom``)
or a screenshot.

Checked: rows and timelines are drawn for the demo's state directory and for
a generated one of 10,000 operations (page 1 of 201, paging, the filter in
the URL fragment, the action filter, a hostile operation id shown as text),
the script logs no error, and the page makes no request (Chromium's network
log holds none from the page; a control page shows the check would see one).
The screenshot of the demo's report is saved (``DURABILITY_REPORT_PNG=PATH``
keeps a copy: that is how ``docs/report.png`` is made).

Chromium comes from the distribution (``apt-get install chromium``; ``.ci/run``
installs it when missing). Without it these tests fail under CI (``CI`` set)
and are skipped elsewhere with a loud warning.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import warnings
import zlib
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.report_states import ANOMALY, HOSTILE, op_id, write_state
from tests.test_cli import SCRIPT

#: Flags for a quiet, private, offline browser (its own background requests off).
FLAGS = [
    "--headless",
    "--no-sandbox",  # run as root in CI containers
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--virtual-time-budget=15000",
]


def chromium() -> str:
    found = os.environ.get("DURABILITY_CHROMIUM") or shutil.which("chromium")
    if found:
        return found
    message = (
        "REPORT BROWSER TESTS NOT RUN: no `chromium` on PATH "
        "(apt-get install chromium, or set DURABILITY_CHROMIUM)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


class Browser:
    """One private profile in `home`; each call is a fresh headless run."""

    def __init__(self, home: Path) -> None:
        self.binary = chromium()
        self.home = home
        self.runs = 0

    def run(self, page: Path, fragment: str, *extra: str) -> tuple[str, str, Path]:
        """Open `page`#`fragment`; returns stdout, stderr and the network log."""
        self.runs += 1
        netlog = self.home / f"net-{self.runs}.json"
        url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
        result = subprocess.run(
            [
                self.binary,
                *FLAGS,
                f"--user-data-dir={self.home / 'profile'}",
                "--enable-logging=stderr",
                "--v=0",
                f"--log-net-log={netlog}",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout, result.stderr, netlog

    def dom(self, page: Path, fragment: str = "") -> str:
        """The DOM after the script ran, checked for script errors and requests."""
        out, err, netlog = self.run(page, fragment, "--dump-dom")
        console = [line for line in err.splitlines() if ":CONSOLE" in line]
        assert console == [], console  # no error, no CSP violation, nothing logged
        assert page_requests(netlog) == []
        return out

    def screenshot(self, page: Path, fragment: str, png: Path) -> None:
        self.run(page, fragment, f"--screenshot={png}", "--window-size=1280,900")


def page_requests(netlog: Path) -> list[str]:
    """URLs the page itself asked the network for (the browser's own
    background requests have no ``file://`` network isolation key)."""
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start
        and "file://" in event.get("params", {}).get("network_isolation_key", "")
        and not event["params"].get("url", "").startswith("file:")
    ]


def body(dom: str) -> dict[str, str]:
    """The ``data-*`` attributes of ``<body>`` the script set."""
    tag = re.search(r"<body([^>]*)>", dom)
    assert tag is not None
    return dict(re.findall(r'data-([a-z]+)="([^"]*)"', tag.group(1)))


def row_ids(dom: str) -> list[str]:
    return re.findall(r'<tr class="op-row[^"]*" data-op="([^"]*)"', dom)


def png_size(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed pixel rows of a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    chunks, at = b"", 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        if data[at + 4 : at + 8] == b"IDAT":
            chunks += data[at + 8 : at + 8 + length]
        at += 12 + length
    return width, height, zlib.decompress(chunks)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Browser:
    return Browser(tmp_path_factory.mktemp("chromium"))


@pytest.fixture(scope="module")
def big_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big")
    state = write_state(root / "state", 10_000, checkpoint=15_000)
    page = root / "report.html"
    result = subprocess.run(
        [SCRIPT, "report", str(state), "-o", str(page)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return page


def test_the_network_check_sees_a_request(browser: Browser, tmp_path: Path) -> None:
    control = tmp_path / "control.html"
    control.write_text('<html><body><img src="http://report-check.invalid/x.png"></body></html>')
    _out, _err, netlog = browser.run(control, "", "--dump-dom")
    assert page_requests(netlog) == ["http://report-check.invalid/x.png"]


def test_the_demo_report_draws_rows_and_timelines(browser: Browser, tmp_path: Path) -> None:
    demo = subprocess.run(
        [SCRIPT, "demo", "state", "--quiet", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr
    page = tmp_path / "report.html"
    made = subprocess.run(
        [SCRIPT, "report", "state", "-o", str(page), "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    operations = json.loads(made.stdout)["operations"]
    dom = browser.dom(page)
    shown = min(operations, 50)
    assert body(dom)["rendered"] == f"{shown} rows"
    assert len(row_ids(dom)) == shown
    assert dom.count('<svg class="timeline"') == shown
    assert dom.count('<path class="level"') == shown
    assert dom.count('<circle class="evidence"') >= shown  # every operation has evidence
    assert '<path class="gate"' in dom and '<rect class="fin finalized"' in dom
    assert '<line class="checkpoint"' in dom or '<rect class="before"' in dom
    plan = json.loads(made.stdout)["actions"]
    first = "resume_from_evidence_boundary" if plan.get("resume_from_evidence_boundary") else ""
    opened = browser.dom(page, f"action={first}&open={row_ids(dom)[0]}")
    assert "Planned action: " in opened and "WAL entries (" in opened
    png = tmp_path / "report.png"
    target = re.findall(r'data-op="([^"]*)"', browser.dom(page, f"action={first}"))
    browser.screenshot(page, f"open={target[0] if target else ''}", png)
    width, height, pixels = png_size(png)
    assert (width, height) == (1280, 900)
    assert png.stat().st_size > 30_000 and len(set(pixels)) > 64  # drawn, not blank
    keep = os.environ.get("DURABILITY_REPORT_PNG")
    if keep:
        shutil.copyfile(png, keep)


def test_ten_thousand_operations_page_and_filter(browser: Browser, big_page: Path) -> None:
    first = browser.dom(big_page)
    assert body(first) == {"rendered": "50 rows", "page": "1", "pages": "201", "matching": "10002"}
    assert "page 1 of 201" in first
    assert row_ids(first)[0] == ANOMALY  # needs attention first
    assert first.count('<svg class="timeline"') == 50
    by_id = browser.dom(big_page, "sort=id")
    assert row_ids(by_id)[:2] == [HOSTILE.replace("<", "&lt;").replace(">", "&gt;"), op_id(0)]
    filtered = browser.dom(big_page, "filter=op-0001&sort=id")
    assert body(filtered)["matching"] == "10"
    assert row_ids(filtered) == [op_id(i) for i in range(10, 20)]
    last = browser.dom(big_page, "page=201&sort=id")
    assert body(last)["rendered"] == "2 rows" and row_ids(last) == [op_id(9_999), ANOMALY]
    doubt = browser.dom(big_page, "doubt=1")
    assert body(doubt)["matching"] == "2000" and body(doubt)["pages"] == "40"
    action = browser.dom(big_page, "action=preserve_terminal&filter=op-0500")
    assert row_ids(action) == [op_id(5_001), op_id(5_006)]  # after the checkpoint


def test_a_hostile_operation_id_is_shown_as_text(browser: Browser, big_page: Path) -> None:
    dom = browser.dom(big_page, "filter=script&open=" + quote(HOSTILE, safe=""))
    assert body(dom)["rendered"] == "1 rows"
    shown = "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f'<td class="opid">{shown}</td>' in dom
    assert dom.count("<script") == 2  # the data and the code: nothing was injected
    assert "&lt;img src=x onerror=alert(2)&gt;" in dom and "<img" not in dom  # its evidence
