"""The C extension only; everything else about the package is in pyproject.toml.

(setuptools still marks the ext-modules table of pyproject.toml experimental; ``setup()`` with
``ext_modules`` is its stable form.) Why the extension exists: the comment on fixserver._wire in
pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("fixserver._wire", sources=["fixserver/_wire.c"])])
