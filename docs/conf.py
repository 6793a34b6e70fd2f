"""Sphinx configuration: the docs/*.md pages (MyST Markdown) as a static site.

Build: python -m sphinx -b html docs docs/_build/html   (needs the `dev` extra; no network)
"""

project = "tinygrad_mnist"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3  # "page.md#a-heading" links resolve, as they do on GitHub
html_theme = "alabaster"
html_title = "tinygrad_mnist"
