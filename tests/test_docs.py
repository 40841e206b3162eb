"""The documentation covers the public API, and the docstrings follow the conventions.

Every public name (``mne_fusion.__all__`` and each public submodule's ``__all__``) must
be listed in ``doc/api.rst``, every public function must take ``verbose=None`` through
MNE's ``@verbose``, and every public docstring must document its parameters and return
value and point somewhere else (See Also or Examples).
"""

import ast
import gc
import inspect
import io
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

import mne_fusion

ROOT = Path(__file__).parents[1]
API_RST = ROOT / "doc" / "api.rst"
EXAMPLES = ROOT / "examples"

# numpydoc validation codes that a public docstring must not trigger.
_REQUIRED = {
    "GL08": "has no docstring",
    "SS01": "has no summary",
    "PR01": "does not document every parameter",
    "PR02": "documents parameters that do not exist",
    "RT01": "returns a value but has no Returns section",
}


def _module_objects(module):
    if not hasattr(module, "__all__"):
        raise AssertionError(f"{module.__name__} has no __all__")
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            yield from _module_objects(obj)
        else:
            yield f"{module.__name__}.{name}", obj


def _public_objects():
    """Every public name of the package, with its fully qualified name."""
    objects = {}
    for name in mne_fusion.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(mne_fusion, name)
        if inspect.ismodule(obj):
            objects.update(_module_objects(obj))
        else:
            objects[f"mne_fusion.{name}"] = obj
    return objects


def _public_methods(cls_name, cls):
    """Public methods and properties that the package defines (not inherited ones)."""
    for klass in cls.__mro__:
        if not klass.__module__.startswith("mne_fusion"):
            continue
        for name, attr in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(attr, property | staticmethod | classmethod) or callable(
                attr
            ):
                yield f"{cls_name}.{name}", attr


def _api_entries(text):
    """The fully qualified names in the autosummary tables of api.rst."""
    entries = []
    module = None
    in_table = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(".. currentmodule::"):
            module = stripped.split("::", 1)[1].strip()
            in_table = False
        elif stripped.startswith(".. autosummary::"):
            in_table = True
        elif in_table and stripped and not stripped.startswith(":"):
            if line.startswith("   "):
                entries.append(f"{module}.{stripped}")
            else:
                in_table = False
    return entries


def test_api_entries_parser():
    """The api.rst parser follows currentmodule and stops at the end of a table."""
    text = textwrap.dedent(
        """
        .. currentmodule:: pkg

        .. autosummary::
           :toctree: generated/

           Foo
           bar

        Some prose.

        .. currentmodule:: pkg.sub

        .. autosummary::

           baz
        """
    )
    assert _api_entries(text) == ["pkg.Foo", "pkg.bar", "pkg.sub.baz"]


def test_api_reference_lists_every_public_name():
    """doc/api.rst lists each public name once and nothing that does not exist."""
    entries = _api_entries(API_RST.read_text(encoding="utf-8"))
    duplicated = sorted({e for e in entries if entries.count(e) > 1})
    assert not duplicated, f"listed more than once in doc/api.rst: {duplicated}"
    public = set(_public_objects())
    missing = sorted(public - set(entries))
    assert not missing, f"public but not in doc/api.rst: {missing}"
    stale = sorted(set(entries) - public)
    assert not stale, f"in doc/api.rst but not public (or not in any __all__): {stale}"


def _problems(name, obj, *, is_method=False):
    from numpydoc.validate import validate

    if isinstance(obj, property):
        # A property is documented by its summary; numpydoc sees it through the class.
        return [] if (obj.__doc__ or "").strip() else [f"{name} has no docstring"]
    codes = {code for code, _ in validate(name)["errors"]}
    problems = [f"{name} {text}" for code, text in _REQUIRED.items() if code in codes]
    if not is_method and {"SA01", "EX01"} <= codes:
        problems.append(f"{name} has neither a See Also nor an Examples section")
    return problems


def _undocumented_constant(name):
    """Whether a public constant lacks the ``#:`` comment that autodoc shows."""
    from sphinx.pycode import ModuleAnalyzer

    module, attr = name.rsplit(".", 1)
    return ("", attr) not in ModuleAnalyzer.for_module(module).find_attr_docs()


def test_public_docstrings():
    """Public docstrings document parameters and returns, and point elsewhere."""
    pytest.importorskip("numpydoc")
    pytest.importorskip("sphinx")
    problems = []
    for name, obj in _public_objects().items():
        if not callable(obj):
            if _undocumented_constant(name):
                problems.append(f"{name} has no '#:' comment where it is assigned")
            continue
        problems += _problems(name, obj)
        if inspect.isclass(obj):
            for meth_name, meth in _public_methods(name, obj):
                problems += _problems(meth_name, meth, is_method=True)
    assert not problems, "\n".join(problems)


def test_public_functions_take_verbose():
    """Every public function takes verbose=None by keyword, through MNE's @verbose."""
    problems = []
    for name, obj in _public_objects().items():
        if inspect.isclass(obj) or not callable(obj):
            continue
        param = inspect.signature(obj).parameters.get("verbose")
        if param is None:
            problems.append(f"{name} has no verbose parameter")
            continue
        if param.kind is not param.KEYWORD_ONLY or param.default is not None:
            problems.append(f"{name} must take verbose=None as a keyword-only argument")
        # mne.utils.verbose compiles a wrapper whose code lives in "<decorator-gen-N>".
        if not obj.__code__.co_filename.startswith("<decorator-gen"):
            problems.append(f"{name} is not decorated with mne.utils.verbose")
    assert not problems, "\n".join(problems)


def _public_modules(module=mne_fusion):
    """The package and every module listed in a public ``__all__``."""
    yield module
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            yield from _public_modules(obj)


def _rst_errors(text):
    """Errors of docutils parsing ``text`` (roles and directives of Sphinx aside)."""
    import docutils.core
    import docutils.nodes

    doctree = docutils.core.publish_doctree(
        inspect.cleandoc(text),
        settings_overrides={
            "report_level": 5,
            "halt_level": 5,
            "warning_stream": io.StringIO(),
        },
    )
    errors = []
    for message in doctree.findall(docutils.nodes.system_message):
        text = message[0].astext()
        # Plain docutils knows neither Sphinx's roles nor its directives.
        if message["level"] >= 3 and not text.startswith(("Unknown", "No ")):
            errors.append(f"line {message['line']}: {text}")
    return errors


def test_docstrings_are_valid_rst():
    """Module, object and example docstrings parse as reStructuredText."""
    pytest.importorskip("docutils")
    texts = {module.__name__: module.__doc__ for module in _public_modules()}
    texts.update(
        (name, obj.__doc__) for name, obj in _public_objects().items() if callable(obj)
    )
    texts.update(
        (path.name, ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))))
        for path in _examples()
    )
    problems = [
        f"{name}: {error}"
        for name, text in texts.items()
        for error in _rst_errors(text or "")
    ]
    assert not problems, "\n".join(problems)


def _examples():
    return sorted(EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.name)
def test_gallery_example_layout(path):
    """Each example is numbered, labelled, titled, and split into # %% cells."""
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.py", path.name), path.name
    source = path.read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(source), clean=False)
    assert docstring, f"{path.name} has no module docstring"
    lines = docstring.strip().splitlines()
    assert re.fullmatch(r"\.\. _ex-[a-z0-9-]+:", lines[0]), (
        f"{path.name} must open with a '.. _ex-<name>:' label, got {lines[0]!r}"
    )
    heading = lines[2:5] if set(lines[2]) == {"="} else lines[2:4]  # overline or not
    title, underline = heading[-2:]
    assert title.strip(), f"{path.name} must have a title after its label"
    assert set(underline) == {"="}, f"{path.name} must underline its title with '='"
    assert len(underline) >= len(title), f"{path.name}: title underline too short"
    if len(heading) == 3:
        assert heading[0] == underline, f"{path.name}: overline and underline differ"
    assert "\n# %%\n" in source, f"{path.name} has no '# %%' cells"


def _quick_examples():
    """Examples that fit no encoder and run in seconds; the doc build runs them all."""
    return [
        path
        for path in _examples()
        if "sgskip" not in path.name and "FusionEncoder(" not in path.read_text()
    ]


@pytest.mark.parametrize("path", _quick_examples(), ids=lambda p: p.name)
def test_gallery_example_runs_cell_by_cell(path, monkeypatch, tmp_path):
    """A quick example runs the way sphinx-gallery runs it: cell by cell, in one
    namespace, with ``sys.path`` and the working directory restored after each cell,
    and leaves nothing in the temporary folder once its namespace is gone."""
    split = pytest.importorskip("sphinx_gallery.py_source_parser")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(path.parent)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    namespace = {"__name__": "__main__", "__file__": str(path)}
    _, blocks = split.split_code_and_text_blocks(path)
    try:
        for block in blocks:
            if block.type != "code":
                continue
            with monkeypatch.context() as cell:
                cell.setattr(sys, "path", list(sys.path))
                code = compile(block.content, f"{path.name}:{block.lineno}", "exec")
                exec(code, namespace)
    finally:
        plt.close("all")
        namespace.clear()
        gc.collect()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_gallery_readme_label():
    """The gallery index has the label that the home page links to."""
    readme = (EXAMPLES / "README.txt").read_text(encoding="utf-8")
    assert readme.startswith(".. _ex-gallery:\n")


def test_api_pages_show_every_public_method(tmp_path):
    """Each class page of the built API reference documents every public method and
    property the package defines, those a mixin or a base class holds included
    (FusionEncoder's predict, apply_inverse and score live in mixins)."""
    for module in ("sphinx_gallery", "pydata_sphinx_theme", "sphinxcontrib.bibtex"):
        pytest.importorskip(module)
    ignore = shutil.ignore_patterns("_build", "generated", "auto_examples")
    shutil.copytree(ROOT / "doc", tmp_path / "doc", ignore=ignore)
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    out = tmp_path / "html"
    command = [sys.executable, "-m", "sphinx", "-q", "-D", "plot_gallery=0"]
    subprocess.run([*command, "-b", "html", tmp_path / "doc", out], check=True)
    missing = []
    for name, obj in _public_objects().items():
        if not inspect.isclass(obj):
            continue
        page = (out / "generated" / f"{name}.html").read_text(encoding="utf-8")
        missing += [m for m, _ in _public_methods(name, obj) if f'id="{m}"' not in page]
    assert not missing, f"not on their class's API page: {missing}"
