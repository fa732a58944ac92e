"""The web console's function (agenthq.console, functions/console): its files, its config and the
headers that keep the page safe; and the page's code, which makes no HTML from strings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agenthq.console import ConsoleSite, content_security_policy
from agenthq.settings import Settings
from local.events import rest_proxy_event
from local.template import ROOT, LocalStack, Resolver, functions, load_template

STATIC = ROOT / "functions" / "console" / "static"
LIVE = "wss://abc123.execute-api.eu-west-1.amazonaws.com/v1"
SETTINGS = Settings.from_env({"TABLE_NAME": "agenthq-test", "LIVE_URL": LIVE, "AWS_REGION": "eu-west-1"})
SITE = ConsoleSite(STATIC)


def get(path: str, settings: Settings = SETTINGS, headers: dict[str, str] | None = None,
        method: str = "GET") -> dict:
    """What the function answers API Gateway for GET /v1<path> (resource /console or /console/{proxy+})."""
    proxy = path[len("/console/"):] if path.startswith("/console/") and path != "/console/" else None
    event = rest_proxy_event(method, path, resource="/console/{proxy+}" if proxy else "/console",
                             path_parameters={"proxy": proxy} if proxy else None, headers=headers or {},
                             request_id="req-1")
    answer = SITE.respond(event, settings)
    answer["headers"] = {k.lower(): v for k, v in answer["headers"].items()}
    return answer


def directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";"))}


def test_the_bare_path_redirects_to_the_folder_relatively():
    answer = get("/console")
    assert answer["statusCode"] == 301 and answer["headers"]["location"] == "console/"  # under any stage
    for path in ("/console/", "/console/index.html"):
        page = get(path)
        assert page["statusCode"] == 200, path
        assert page["headers"]["content-type"] == "text/html; charset=utf-8"
        assert page["headers"]["cache-control"] == "no-store"
        assert '<script type="module" src="js/main.js"></script>' in page["body"]


def test_config_says_where_the_live_api_is_and_which_region_to_sign_for():
    answer = get("/console/config.json")
    assert answer["statusCode"] == 200 and answer["headers"]["cache-control"] == "no-store"
    assert json.loads(answer["body"]) == {"live_url": LIVE, "region": "eu-west-1", "version": SETTINGS.version}
    unset = Settings.from_env({"TABLE_NAME": "agenthq-test", "LIVE_URL": "https://not-a-websocket/v1"})
    assert json.loads(get("/console/config.json", unset)["body"])["live_url"] is None


@pytest.mark.parametrize("path", ["/console", "/console/", "/console/js/main.js", "/console/config.json",
                                  "/console/missing.js"])
def test_every_answer_carries_a_strict_content_security_policy(path):
    headers = get(path)["headers"]
    policy = directives(headers["content-security-policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]  # no inline code at all
    assert policy["connect-src"] == ["'self'", "wss://abc123.execute-api.eu-west-1.amazonaws.com"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["require-trusted-types-for"] == ["'script'"] and policy["trusted-types"] == ["'none'"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"


def test_without_a_websocket_url_the_page_may_connect_only_to_its_own_origin():
    assert directives(content_security_policy(""))["connect-src"] == ["'self'"]
    assert directives(content_security_policy("javascript:alert(1)"))["connect-src"] == ["'self'"]
    assert directives(content_security_policy("ws://127.0.0.1:3001/v1"))["connect-src"] == [
        "'self'", "ws://127.0.0.1:3001"]


def test_each_file_is_served_with_its_type_and_revalidated_by_etag():
    files = sorted(p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file())
    assert {"index.html", "console.css", "js/main.js", "js/sigv4.js", "js/live.js"} <= set(files)
    types = {".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
    for name in files:
        answer = get(f"/console/{name}")
        assert answer["statusCode"] == 200, name
        assert answer["body"] == (STATIC / name).read_text(encoding="utf-8")
        assert answer["headers"]["content-type"].startswith(types[Path(name).suffix]), name
        if not name.endswith(".html"):
            assert answer["headers"]["cache-control"] == "no-cache", name
            etag = answer["headers"]["etag"]
            again = get(f"/console/{name}", headers={"If-None-Match": etag})
            assert again["statusCode"] == 304 and again["body"] == "", name
            assert get(f"/console/{name}", headers={"If-None-Match": '"other"'})["statusCode"] == 200


@pytest.mark.parametrize("path", ["/console/../app.py", "/console/js/../../app.py", "/console/app.py",
                                  "/console/.hidden", "/console/js/.main.js", "/console/js//main.js",
                                  "/console/js\\main.js", "/console/index.html/", "/console/js/", "/console/%00",
                                  "/console/nothing.html", "/console/js/main.py"])
def test_anything_but_its_own_files_is_a_404_with_the_error_body(path):
    answer = get(path)
    assert answer["statusCode"] == 404, path
    body = json.loads(answer["body"])
    assert body == {"error": {"code": "not_found", "message": "There is no such page in the console.",
                              "request_id": "req-1"}}
    assert answer["headers"]["cache-control"] == "no-store"


def test_only_get_is_answered():
    assert get("/console/js/main.js", method="POST")["statusCode"] == 405


# --------------------------------------------------------------------------- the page's own code

SCRIPTS = sorted(STATIC.rglob("*.js"))
#: What would make HTML (or code) from a string, or keep a secret where it outlives the page.
FORBIDDEN = re.compile(r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
                       r"setTimeout\(\s*['\"`]|localStorage|sessionStorage|document\.cookie|DOMParser|"
                       r"createContextualFragment|srcdoc")


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.relative_to(STATIC).as_posix() for p in SCRIPTS])
def test_no_script_makes_html_from_strings_or_stores_a_secret(script):
    found = [line for line in script.read_text(encoding="utf-8").splitlines()
             if FORBIDDEN.search(line) and not line.lstrip().startswith("//")]
    assert found == [], found


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.relative_to(STATIC).as_posix() for p in SCRIPTS])
def test_every_import_names_a_file_of_the_console(script):
    for target in re.findall(r'from "(\.{1,2}/[^"]+)"', script.read_text(encoding="utf-8")):
        assert (script.parent / target).resolve().is_file(), f"{script.name} imports {target}"


def test_the_page_has_no_inline_script_style_or_handler():
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
    assert "<style" not in page and not re.search(r"\sstyle=", page)
    assert not re.search(r"\son[a-z]+=", page)
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page), "everything from the console itself"


def test_the_function_has_no_policy_and_learns_the_websocket_url_from_its_environment():
    template = load_template()
    console = template["Resources"]["ConsoleFunction"]["Properties"]
    assert console["Policies"] == []
    assert console["LoggingConfig"] == {"LogGroup": {"Ref": "ConsoleFunctionLogGroup"}}
    spec = functions(template, Resolver(template, LocalStack()))["ConsoleFunction"]
    assert spec.environment["LIVE_URL"] == "wss://agenthqlive.execute-api.us-east-1.amazonaws.com/v1"
    assert {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in console["Events"].values()} == {
        ("GET", "/console"), ("GET", "/console/{proxy+}")}
