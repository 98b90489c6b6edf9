import shutil
import subprocess

import pytest


def chromium_screenshot(page, png, profile, height=1600):
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail(
            "chromium not found on PATH; slow tests need it "
            "(Debian: apt-get install -y chromium)"
        )
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        f"--window-size=1280,{height}",
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_report_renders_in_a_real_browser(mixed_showcase, tmp_path):
    _, showcase = mixed_showcase
    screenshot = tmp_path / "report.png"
    result = chromium_screenshot(showcase / "index.html", screenshot, tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    assert screenshot.is_file(), result.stderr[-2000:]
    # A blank 1280x1600 page compresses to a few KB; the rendered report is far larger.
    assert screenshot.stat().st_size > 50_000
