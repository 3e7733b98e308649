"""Builds site/ for the Storage static website and publishes it (azd's postdeploy hook; docs/deploy.md).

A Storage static website serves blobs as they are named, sends no headers of its own and rewrites nothing,
so the build gives it what devhost and staticwebapp.config.json give the pages locally:
- each page also under its name without `.html` (`/manage` is `manage`, `/staff` is `staff/index.html`'s copy),
  uploaded as text/html;
- the config's Content-Security-Policy as a <meta> in every page, with the API's origin added to
  connect-src (the pages call the function app across origins), and the API's origin itself as
  <meta name="api-origin"> for site/assets/app.js;
- its rewrites (`/invite/*` -> `/invite.html`) done by the error document, `404.html`, which loads the
  target page in place (the answer's status stays 404; a front door with rewrite rules removes that);
- nhsuk-frontend's compiled files at /assets/nhsuk/, where devhost serves them from node_modules.

    python scripts/publish_site.py build OUT --api-origin https://func-x.azurewebsites.net
    python scripts/publish_site.py publish     # reads AZURE_SITE_STORAGE_ACCOUNT_NAME and SERVICE_API_URI
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"
NHSUK_DIST = ROOT / "node_modules" / "nhsuk-frontend" / "dist" / "nhsuk"
CONFIG = "staticwebapp.config.json"
# Directives a <meta> policy cannot carry (browsers ignore them there).
_META_UNSUPPORTED = ("frame-ancestors", "report-uri", "report-to", "sandbox")

_NOT_FOUND = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Page not found - Book a vaccination - NHS</title>
<link rel="stylesheet" href="/assets/nhsuk/nhsuk-frontend.min.css">
</head>
<body>
<main class="nhsuk-width-container nhsuk-main-wrapper" id="maincontent">
<h1 class="nhsuk-heading-l">Page not found</h1>
<p class="nhsuk-body">If you typed the web address, check it is correct. <a href="/">Go to the start page</a>.</p>
</main>
<script src="/assets/not-found.js" data-rewrites="{rewrites}"></script>
</body>
</html>
"""

_ROUTER = """// The Storage static website's error document: a path the site rewrites (staticwebapp.config.json)
// loads its target page in place, keeping the address (the page reads its code from it).
(function () {
  var rewrites = JSON.parse(document.currentScript.dataset.rewrites || "[]");
  var path = window.location.pathname;
  for (var i = 0; i < rewrites.length; i++) {
    var route = rewrites[i].route, wild = route.charAt(route.length - 1) === "*";
    var prefix = wild ? route.slice(0, -1) : route;
    if (wild ? path.indexOf(prefix) === 0 && path.length > prefix.length : path === route) {
      fetch(rewrites[i].rewrite).then(function (r) { return r.text(); }).then(function (page) {
        document.open(); document.write(page); document.close();
      });
      return;
    }
  }
})();
"""


def meta_policy(policy: str, api_origin: str) -> str:
    """The site's CSP for a <meta>: directives a meta cannot carry dropped, the API's origin allowed to connect."""
    kept = []
    for directive in (part.strip() for part in policy.split(";")):
        if not directive or directive.split()[0] in _META_UNSUPPORTED:
            continue
        extra = f" {api_origin}" if directive.split()[0] == "connect-src" and api_origin else ""
        kept.append(directive + extra)
    return "; ".join(kept)


def build(out: Path, api_origin: str, site: Path = SITE, nhsuk: Path = NHSUK_DIST) -> tuple[Path, dict[str, Path]]:
    """Assemble the site in `out/files`: that folder, and the pages to upload again under their names without
    `.html` (blob name -> file), which a folder cannot hold beside folders of the same name."""
    files = out / "files"
    bare: dict[str, Path] = {}
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(site, files, ignore=shutil.ignore_patterns(CONFIG, ".*"))
    if nhsuk.is_dir():
        shutil.copytree(nhsuk, files / "assets" / "nhsuk", dirs_exist_ok=True)
        # The framework's stylesheet names its icons at /assets/images/ (as devhost serves them).
        if (nhsuk / "assets" / "images").is_dir():
            shutil.copytree(nhsuk / "assets" / "images", files / "assets" / "images", dirs_exist_ok=True)
    config = json.loads((site / CONFIG).read_text()) if (site / CONFIG).is_file() else {}
    policy = config.get("globalHeaders", {}).get("Content-Security-Policy", "")
    head = f'<meta name="api-origin" content="{html.escape(api_origin)}">'
    if policy:
        content = html.escape(meta_policy(policy, api_origin))
        head += f'\n<meta http-equiv="Content-Security-Policy" content="{content}">'
    rewrites = [{"route": r["route"], "rewrite": r["rewrite"]} for r in config.get("routes", []) if "rewrite" in r]
    (files / "404.html").write_text(_NOT_FOUND.replace("{rewrites}", html.escape(json.dumps(rewrites))))
    (files / "assets" / "not-found.js").write_text(_ROUTER)
    for page in sorted(files.rglob("*.html")):
        text = page.read_text()
        anchor = r"(<meta charset[^>]*>)" if re.search(r"<meta charset", text) else r"(<head[^>]*>)"
        text = re.sub(anchor, lambda m: f"{m.group(1)}\n{head}", text, count=1)
        page.write_text(text)
        relative = page.relative_to(files)
        if relative.name == "404.html":
            continue
        name = relative.parent if relative.name == "index.html" else relative.with_suffix("")
        if str(name) != ".":
            bare[name.as_posix()] = page
    return files, bare


def publish() -> None:
    account = os.environ["AZURE_SITE_STORAGE_ACCOUNT_NAME"]
    api_origin = os.environ["SERVICE_API_URI"].rstrip("/")
    files, bare = build(ROOT / ".site-dist", api_origin)
    login = ["--account-name", account, "--auth-mode", "login"]
    _az("blob", "service-properties", "update", *login, "--static-website", "--index-document", "index.html",
        "--404-document", "404.html")
    _az("blob", "upload-batch", *login, "--destination", "$web", "--source", str(files), "--overwrite")
    for name, page in bare.items():
        _az("blob", "upload", *login, "--container-name", "$web", "--name", name, "--file", str(page), "--overwrite",
            "--content-type", "text/html; charset=utf-8")


def _az(*args: str) -> None:
    """`az storage ...` with the deployer's own sign-in (the account takes no keys)."""
    subprocess.run(["az", "storage", *args], check=True)  # noqa: S603, S607


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    built = commands.add_parser("build")
    built.add_argument("out", type=Path)
    built.add_argument("--api-origin", default="")
    commands.add_parser("publish")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.out, args.api_origin.rstrip("/"))
    else:
        publish()


if __name__ == "__main__":
    main(sys.argv[1:])
