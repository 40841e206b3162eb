"""Sphinx configuration for the mne-fusion documentation.

Build with ``make -C doc html`` (warnings are errors). The build needs no network:
intersphinx links to other projects are only made when ``MNE_FUSION_DOC_INTERSPHINX``
is set (see the install page), because an unreachable inventory is a warning that no
Sphinx setting can silence.
"""

import inspect
import os
from datetime import date

from docutils import nodes

import mne_fusion

# -- Project -------------------------------------------------------------------------

project = "mne-fusion"
author = "mne-fusion developers"
copyright = f"2026-{date.today().year}, {author}"
release = mne_fusion.__version__
version = ".".join(release.split(".")[:2])

# -- General -------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "sphinxcontrib.bibtex",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
# A bare `name` is a Python reference; names Sphinx cannot resolve render as code.
default_role = "py:obj"
nitpicky = False
pygments_style = "sphinx"

# -- autodoc / autosummary / numpydoc ------------------------------------------------

autosummary_generate = True
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = True
# Only the names below become links; everything else in a type stays plain text, so
# "array, shape (n_times, n_features)" never turns into dangling references.
numpydoc_xref_ignore = "all"
numpydoc_xref_aliases = {
    # Python and NumPy
    "None": "None",
    "bool": "bool",
    "int": "int",
    "float": "float",
    "str": "str",
    "dict": "dict",
    "list": "list",
    "tuple": "tuple",
    "callable": "callable",
    "Path": "pathlib.Path",
    "path-like": "os.PathLike",
    "array": "numpy.ndarray",
    "ndarray": "numpy.ndarray",
    "Generator": "numpy.random.Generator",
    "RandomState": "numpy.random.RandomState",
    "sparse matrix": "scipy.sparse.csr_matrix",
    # MNE
    "Info": "mne.Info",
    "Raw": "mne.io.Raw",
    "BaseRaw": "mne.io.BaseRaw",
    "RawArray": "mne.io.RawArray",
    "Epochs": "mne.Epochs",
    "BaseEpochs": "mne.BaseEpochs",
    "Evoked": "mne.Evoked",
    "Forward": "mne.Forward",
    "Covariance": "mne.Covariance",
    "SourceSpaces": "mne.SourceSpaces",
    "SourceEstimate": "mne.SourceEstimate",
    "Transform": "mne.transforms.Transform",
    "InverseOperator": "mne.minimum_norm.InverseOperator",
    # scikit-learn, torch
    "BaseEstimator": "sklearn.base.BaseEstimator",
    "Tensor": "torch.Tensor",
    "Module": "torch.nn.Module",
    # mne-fusion
    "Features": "mne_fusion.features.Features",
    "FeatureExtractor": "mne_fusion.features.FeatureExtractor",
    "Stimulus": "mne_fusion.features.Stimulus",
    "FusionDataset": "mne_fusion.FusionDataset",
    "MEGSubject": "mne_fusion.container.MEGSubject",
    "FMRISubject": "mne_fusion.container.FMRISubject",
    "FusionEncoder": "mne_fusion.FusionEncoder",
}

# -- intersphinx ---------------------------------------------------------------------

_INTERSPHINX = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "scipy": ("https://docs.scipy.org/doc/scipy", None),
    "matplotlib": ("https://matplotlib.org/stable", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
    "mne": ("https://mne.tools/stable", None),
    "nilearn": ("https://nilearn.github.io/stable", None),
}
# Offline (the default) the mapping stays empty: references to other projects render
# as code instead of links, and the build neither waits on nor warns about the network.
intersphinx_mapping = (
    _INTERSPHINX if os.getenv("MNE_FUSION_DOC_INTERSPHINX", "0") == "1" else {}
)
intersphinx_timeout = 10

# -- Bibliography --------------------------------------------------------------------

bibtex_bibfiles = ["references.bib"]
bibtex_default_style = "unsrt"
bibtex_reference_style = "author_year"
bibtex_foot_reference_style = "foot"

# -- sphinx-gallery ------------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "doc_module": ("mne_fusion",),
    "backreferences_dir": "generated",
    # Files named *sgskip* (the two real-data examples: 90 downloads gigabytes, 95
    # about 0.6 GB and needs the encoder file that 90 writes) are rendered, not run.
    "filename_pattern": "^((?!sgskip).)*$",
    "within_subsection_order": "FileNameSortKey",
    "capture_repr": ("_repr_html_",),
    "remove_config_comments": True,
    "image_scrapers": ("matplotlib",),
    "min_reported_time": 1,
    "show_memory": False,
    "plot_gallery": "True",
}

# -- HTML ----------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"mne-fusion {version}"
html_static_path = ["_static"]
html_css_files = ["style.css"]
html_show_sourcelink = False
html_theme_options = {
    "icon_links": [
        {
            "name": "GitHub",
            "url": "https://github.com/mne-tools/mne-fusion",
            "icon": "fa-brands fa-github",
        },
    ],
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "secondary_sidebar_items": ["page-toc"],
    "show_toc_level": 1,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}
html_sidebars = {"install": [], "changelog": []}

# -- References to other projects, and foreign members ---------------------------------

# Docstrings filled from MNE's docdict point to labels of MNE's own documentation. They
# are linked here, before intersphinx runs, so that they resolve offline and never to
# another project's label of the same name (Python's tutorial also has "tut-logging").
_MNE_URL = "https://mne.tools/stable/"
_MNE_LABELS = {
    "tut-logging": "auto_tutorials/intro/50_configure_mne.html#tut-logging",
}


def _resolve_external(app, env, node, contnode):
    if node.get("refdomain") != "std":
        return None
    target = node["reftarget"]
    if node.get("reftype") == "ref" and target in _MNE_LABELS:
        reference = nodes.reference(
            "", "", internal=False, refuri=_MNE_URL + _MNE_LABELS[target]
        )
        reference += contnode
        return reference
    # Offline, a reference aimed at another project's inventory (":term:`numpy:...`")
    # can only be text; online, intersphinx resolves it.
    if not intersphinx_mapping and target.split(":", 1)[0] in _INTERSPHINX:
        return contnode
    return None


def _skip_foreign_members(app, what, name, obj, skip, options):
    # scikit-learn adds methods such as set_fit_request to every estimator; document
    # only what mne-fusion defines.
    module = getattr(obj, "__module__", None) or ""
    if what == "class" and callable(obj) and not module.startswith("mne_fusion"):
        return True
    return None


def _drop_builtin_docstrings(app, what, name, obj, options, lines):
    # A constant without a "#:" comment would show the docstring of its type
    # ("Built-in immutable sequence...").
    if what == "data" and "\n".join(lines).strip() == (
        inspect.cleandoc(type(obj).__doc__ or "")
    ):
        lines.clear()


def setup(app):
    app.connect("missing-reference", _resolve_external, priority=400)
    app.connect("autodoc-process-docstring", _drop_builtin_docstrings)
    app.connect("autodoc-skip-member", _skip_foreign_members)
