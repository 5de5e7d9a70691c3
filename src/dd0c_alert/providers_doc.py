"""Keep docs/providers.md's snippets identical to what ``integration create`` prints:
``python -m dd0c_alert.providers_doc [--check]`` rewrites the fenced block after each
``<!-- snippet: NAME -->`` marker (and the Argo CD template after
``<!-- argocd-template -->``, taken from providers/argocd.py); a test fails when the
page differs from what this would write."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

from dd0c_alert.providers import PROVIDERS, argocd
from dd0c_alert.setup_snippets import snippet

PAGE = Path("docs") / "providers.md"
SECRET = "<secret>"  # noqa: S105  (a placeholder shown in the docs)
_BLOCK = re.compile(r"(<!-- (snippet: ([\w-]+)|argocd-template) -->\n)```[^\n]*\n.*?```\n", re.S)


def example_url(provider: str) -> str:
    return f"https://dd0c.example.com/v1/wh/<tenant-id>/{provider}/<integration-id>"


def argocd_template() -> str:
    """The recommended template, as providers/argocd.py documents it."""
    doc = argocd.__doc__ or ""
    literal = doc.split("::\n", 1)[1]
    lines = []
    for line in literal.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines)).strip() + "\n"


def refresh(page: str) -> str:
    def block(match: re.Match[str]) -> str:
        name = match.group(3)
        body = argocd_template() if name is None else snippet(name, example_url(name), SECRET)
        fence = (
            "yaml"
            if name in (None, "alertmanager", "argocd")
            else "sh"
            if name == "custom"
            else "text"
        )
        return f"{match.group(1)}```{fence}\n{body}```\n"

    return _BLOCK.sub(block, page)


def missing(page: str) -> list[str]:
    """Providers without a snippet block on the page."""
    return [p for p in sorted(PROVIDERS) if f"<!-- snippet: {p} -->" not in page]


def main(argv: list[str]) -> int:
    current = PAGE.read_text(encoding="utf-8")
    fresh = refresh(current)
    if "--check" in argv:
        stale = fresh != current or missing(current)
        if stale:
            print(f"{PAGE} is stale: run python -m dd0c_alert.providers_doc")  # noqa: T201
        return 1 if stale else 0
    PAGE.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
