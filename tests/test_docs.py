"""The documentation cannot drift from the code: the configuration reference is what
``python -m dd0c_alert.config_doc`` writes from the settings model, the provider page's
snippets are what ``integration create`` prints, the README links every page (and
every link's section exists), and the request bodies the README spells out are the
ones the API takes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dd0c_alert import config_doc, providers_doc
from dd0c_alert.config import Settings
from dd0c_alert.providers import PROVIDERS
from dd0c_alert.setup_snippets import snippet

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"


def test_the_configuration_reference_is_current() -> None:
    written = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert written == config_doc.render(), "run: python -m dd0c_alert.config_doc"
    for name in Settings.model_fields:
        assert f"`DD0C_{name.upper()}`" in written or name in {
            "database_url",
            "redis_url",
            "jwt_secret",
            "governance_mode",
        }, name


def test_a_setting_left_out_of_the_reference_fails_it(monkeypatch: pytest.MonkeyPatch) -> None:
    short = tuple((title, names[:-1]) for title, names in config_doc.SECTIONS)
    monkeypatch.setattr(config_doc, "SECTIONS", short)
    with pytest.raises(ValueError, match="not placed"):
        config_doc.render()


def test_the_stale_check_exits_non_zero(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    page.write_text("old\n")
    assert config_doc.main(["--check", str(page)]) == 1
    assert config_doc.main([str(page)]) == 0
    assert config_doc.main(["--check", str(page)]) == 0


def test_the_provider_page_shows_every_snippet_as_printed() -> None:
    page = (DOCS / "providers.md").read_text(encoding="utf-8")
    assert providers_doc.missing(page) == []
    assert providers_doc.refresh(page) == page, "run: python -m dd0c_alert.providers_doc"
    for provider in PROVIDERS:
        shown = snippet(provider, providers_doc.example_url(provider), providers_doc.SECRET)
        assert shown in page, provider
    assert providers_doc.argocd_template() in page
    stale = page.replace("send_resolved: true", "send_resolved: false")
    assert providers_doc.refresh(stale) == page


def test_the_readme_links_every_page_and_every_link_resolves() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in readme, page.name
    for source in [ROOT / "README.md", *DOCS.glob("*.md")]:
        text = source.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", text):
            assert (source.parent / target).exists(), f"{source.name} links {target}"


def _anchors(page: Path) -> set[str]:
    """GitHub's ids of a page's headings, and its explicit ``<a id>`` anchors."""
    text = page.read_text(encoding="utf-8")
    headings = re.findall(r"^#+\s+(.*)$", text, re.M)
    slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
    return slugs | set(re.findall(r'<a id="([^"]+)">', text))


def test_every_link_to_a_section_finds_it() -> None:
    for source in [ROOT / "README.md", ROOT / "SECURITY.md", *DOCS.glob("*.md")]:
        text = source.read_text(encoding="utf-8")
        for target, section in re.findall(r"\]\(([^)#:]*\.md)?#([^)]+)\)", text):
            page = source.parent / target if target else source
            assert section in _anchors(page), f"{source.name} links {target}#{section}"


#: ``POST /v1/silences {"matchers", "starts_at"}`` or ``… {"verdict": "noise"|…}`` in
#: the README: a request and the keys of its JSON body.
_SPELLED_BODY = re.compile(r"`(POST|PUT|PATCH) (/v1/[^ `]+) (\{[^`]*\})`")


def _request_keys(spec: dict[str, Any], method: str, path: str) -> set[str]:
    shape = re.sub(r"\\\{[^}]*\\\}", r"{[^}]+}", re.escape(path))
    [documented] = [p for p in spec["paths"] if re.fullmatch(shape, p)]
    operation = spec["paths"][documented][method.lower()]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    refs = [schema, *schema.get("anyOf", [])]
    name = next(r["$ref"] for r in refs if "$ref" in r).rsplit("/", 1)[-1]
    return set(spec["components"]["schemas"][name]["properties"])


def test_the_request_bodies_the_readme_spells_out_are_the_apis(client: TestClient) -> None:
    """A key the README names that the API refuses (``feedback`` was undocumented and
    guessed wrong, ``{"feedback": "noise"}`` → 422) fails here."""
    spec = client.app.openapi()  # type: ignore[attr-defined]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    spelled = _SPELLED_BODY.findall(readme.replace("\n  ", " "))
    assert len(spelled) >= 5, spelled
    for method, path, body in spelled:
        after = r"\s*:" if ":" in body else r"\s*[,}]"  # {"k": v} or a set {"k", "l"}
        keys = set(re.findall(r'"(\w+)"(?=' + after + ")", body))
        assert keys and keys <= _request_keys(spec, method, path), (method, path, keys)
