"""Fixtures of the qm-server tests: a real server on a free port, over a SQLite file."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

sys.path.insert(0, str(Path(__file__).parent))

from qm_server_support import TOKEN, LiveServer, graphs_folder

from qm_server import ServerSettings


def sqlite_config(tmp_path: Path) -> dict[str, object]:
    return {
        "store": {"name": "sqlite", "path": str(tmp_path / "flows.db")},
        "dispatcher": {"name": "async"},
    }


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server without a token (loopback), on SQLite, with the async dispatcher."""
    settings = ServerSettings(
        graphs_dir=graphs_folder(tmp_path / "graphs"), config=sqlite_config(tmp_path)
    )
    live = LiveServer(settings).start()
    yield live
    live.stop()


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[LiveServer]:
    """A server that requires the test token."""
    settings = ServerSettings(
        graphs_dir=graphs_folder(tmp_path / "graphs"), config=sqlite_config(tmp_path), token=TOKEN
    )
    live = LiveServer(settings).start()
    yield live
    live.stop()


CHROMIUM = ("chromium", "chromium-browser")
DRIVER = "chromedriver"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Debian's headless Chromium driven by its chromedriver (nothing is downloaded)."""
    binary = next((found for name in CHROMIUM if (found := shutil.which(name))), None)
    driver_path = shutil.which(DRIVER)
    if binary is None or driver_path is None:
        raise RuntimeError(
            "the page tests need Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,860"):
        options.add_argument(argument)
    options.add_argument("--disable-dev-shm-usage")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
