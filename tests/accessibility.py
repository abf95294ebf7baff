"""axe-core for the browser tests: the npm package in tests/.npm (git-ignored), installed with
npm when missing (``make test`` does it first). Where npm cannot install it, a smaller check
written here runs instead (labels bound to inputs, names of links and buttons, page language,
one h1), and the test says so in its output."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

AXE_VERSION = "4.14.1"
NPM_DIR = Path(__file__).resolve().parent / ".npm"
AXE_JS = NPM_DIR / "node_modules" / "axe-core" / "axe.min.js"

_FALLBACK = """() => {
  const out = [];
  const bad = (id, el) => out.push({id, impact: 'serious', nodes: [{target: [el.outerHTML.slice(0, 120)]}]});
  if (!document.documentElement.lang) bad('html-has-lang', document.documentElement);
  if (document.querySelectorAll('h1').length !== 1) bad('page-has-one-h1', document.body);
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby')) bad('label', el);
  }
  for (const el of document.querySelectorAll('a[href], button')) {
    if (!el.textContent.trim() && !el.getAttribute('aria-label')) bad(el.tagName === 'A' ? 'link-name' : 'button-name', el);
  }
  return out;
}"""


def axe_source() -> str | None:
    """axe.min.js, installing it with npm when missing; None when that is impossible."""
    if not AXE_JS.exists() and shutil.which("npm"):
        NPM_DIR.mkdir(exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(NPM_DIR),
                        f"axe-core@{AXE_VERSION}"], check=False, capture_output=True, timeout=300)
    return AXE_JS.read_text(encoding="utf-8") if AXE_JS.exists() else None


def serious_violations(page: Any, source: str | None) -> list[str]:
    """'rule: target' for each serious or critical violation on the page as it is now."""
    if source is not None:
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.add_script_tag(content=source)
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        violations = result["violations"]
    else:
        violations = page.evaluate(_FALLBACK)
    return [f"{v['id']}: {', '.join(str(t) for n in v['nodes'] for t in n['target'])}"
            for v in violations if v.get("impact") in ("serious", "critical")]
