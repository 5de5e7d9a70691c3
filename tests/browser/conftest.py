"""One real ``dd0c-alert serve`` process and one headless Chromium for the whole
browser folder (each costs seconds to start); every module gets its own ``Server``
view of the process and signs up its own team, so the modules stay independent.

Package scope, not session: Playwright's sync API keeps an asyncio loop running
while it is open, and the tests after this folder call ``asyncio.run``."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dd0c_alert.app import build_runtime
from dd0c_alert.pipeline.runtime import Runtime
from servers import free_port, start_serve
from stand_ins.slack_api import SlackStandIn
from webhook_helpers import make_settings

from .helpers import CHROMIUM, SLACK_TOKEN, Server, sync_api

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@dataclass(frozen=True)
class Serving:
    base: str
    setup: Runtime
    slack: SlackStandIn


@pytest.fixture(scope="package")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    tmp = tmp_path_factory.mktemp("dashboard")
    settings = make_settings(tmp / "data")
    setup = build_runtime(settings, roles=frozenset())
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD0C_")}
    slack = SlackStandIn((SLACK_TOKEN,)).start()
    env |= {
        "DD0C_DATA_DIR": str(settings.data_dir),
        "DD0C_SUGGEST_INTERVAL_SECONDS": "0",
        "DD0C_LOG_LEVEL": "warning",
        "DD0C_SLACK_API_URL": slack.base_url,
        "DD0C_NOTIFY_COALESCE_SECONDS": "0.5",
    }
    port = free_port()
    env["DD0C_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    process = start_serve(env, port, tmp / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        yield Serving(base, setup, slack)
    finally:
        slack.stop()
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(serving: Serving) -> Server:
    return Server(serving.base, serving.setup, serving.slack)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
