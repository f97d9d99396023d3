"""The portal's scripts are ES modules (static/js, no build step): every page loads them as
modules, none defines globals or wraps itself in an IIFE, and every relative import names a file
and names that file exports. The one classic script is theme.js (it must run before the first
paint); the vendored libraries stay as published."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "static" / "js"
CLASSIC = {"js/theme.js"}
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.S)
IMPORT = re.compile(r'^import (?:\{([^}]*)\} from )?"([^"]+)";$', re.M)
EXPORT = re.compile(r"^export (?:function|const|let) ([\w$]+)", re.M)


def our_scripts() -> list[Path]:
    return sorted(JS.rglob("*.js"))


def test_every_page_loads_our_scripts_as_modules_and_no_inline_script():
    seen = set()
    for template in sorted((ROOT / "templates").rglob("*.html")):
        for attrs in SCRIPT_TAG.findall(template.read_text()):
            source = re.search(r"""src="\{% static '([^']+)' %\}\"""", attrs)
            if source is None:
                # No inline code: the only script without src is json_script's data block.
                assert 'type="application/json"' in attrs, f"{template}: <script{attrs}>"
                continue
            path = source.group(1)
            seen.add(path)
            if path.startswith("vendor/") or path in CLASSIC:
                assert 'type="module"' not in attrs, f"{template}: {path}"
            else:
                assert 'type="module"' in attrs and "defer" not in attrs, f"{template}: {path} is not a module"
    assert {"js/portal.js", "js/logviewer.js", "js/notifications.js", "js/theme.js"} <= seen


def test_no_script_of_ours_is_an_iife_or_defines_globals():
    for script in our_scripts():
        text = script.read_text()
        assert not re.search(r"^\(function", text, re.M), f"{script}: an IIFE"
        assert "window.Rota" not in text and "global.Rota" not in text, f"{script}: a global"
        assert not re.search(r"\bvar ", text), f"{script}: var (modules use let and const)"


def test_every_import_resolves_to_a_file_that_exports_the_names():
    exports = {script: set(EXPORT.findall(script.read_text())) for script in our_scripts()}
    imports = 0
    for script in our_scripts():
        for names, target in IMPORT.findall(script.read_text()):
            assert target.startswith(("./", "../")), f"{script}: {target}"
            module = (script.parent / target).resolve()
            assert module in exports, f"{script}: {target} does not exist"
            for name in filter(None, (n.strip() for n in names.split(","))):
                assert name in exports[module], f"{script}: {target} does not export {name}"
            imports += 1
    assert imports > 40  # the portal and the log viewer are made of modules


def test_realtime_is_one_module_instance_for_the_whole_page():
    """Every module reaches the socket through the same relative path (one module instance, so one
    socket per page), never through a global."""
    for script in our_scripts():
        for _names, target in IMPORT.findall(script.read_text()):
            if target.endswith("realtime.js"):
                assert (script.parent / target).resolve() == JS / "realtime.js", script


def test_the_module_graph_has_no_cycle():
    """Production names static files by a hash of their content, imports included
    (portal/storage.py): a cycle of imports has no such name, and collectstatic would fail."""
    graph = {
        script: {(script.parent / target).resolve() for _names, target in IMPORT.findall(script.read_text())}
        for script in our_scripts()
    }
    done: set[Path] = set()

    def visit(node: Path, path: tuple[Path, ...]) -> None:
        assert node not in path, " -> ".join(p.name for p in (*path, node))
        if node in done:
            return
        for child in graph[node]:
            visit(child, (*path, node))
        done.add(node)

    for script in graph:
        visit(script, ())


def test_production_static_files_import_the_hashed_modules(settings, tmp_path):
    """collectstatic with the production storage: every module imports the hashed names, so a
    deploy never mixes cached old modules with new ones."""
    from django.core.management import call_command

    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "portal.storage.StaticFilesStorage"}}
    call_command("collectstatic", "--noinput", "-v0")
    hashed = sorted((tmp_path / "js").rglob("*.[0-9a-f]*.js"))
    entry = next(p for p in hashed if re.fullmatch(r"portal\.[0-9a-f]{12}\.js", p.name))
    assert re.search(r'^import \{ initLive \} from "\./portal/live\.[0-9a-f]{12}\.js";$', entry.read_text(), re.M)
    for module in hashed:
        for _names, target in IMPORT.findall(module.read_text()):
            assert re.search(r"\.[0-9a-f]{12}\.js$", target), f"{module.name} imports {target}"
            assert (module.parent / target).resolve().is_file(), f"{module.name} imports {target}"
