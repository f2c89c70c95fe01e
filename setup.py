"""Packaging beyond pyproject.toml: data folders kept at the top of the source tree.

The product card fixes report_templates/, subspace_bank/ and examples/ at the top of
the repository, next to the package. They are installed as the data packages
``iceaudit.report_templates``, ``iceaudit.subspace_bank`` (the shipped demo bank) and
``iceaudit.examples`` (FaceLab classifiers, their cards, example policies), so an
installed iceaudit finds everything it needs with importlib.resources
(`iceaudit.resources`) and never reaches into a checkout.
"""
from setuptools import find_namespace_packages, setup

DATA_PACKAGES = {
    "iceaudit.report_templates": "report_templates",
    "iceaudit.subspace_bank": "subspace_bank",
    "iceaudit.examples": "examples",
}

setup(
    packages=find_namespace_packages(include=["iceaudit*"]) + list(DATA_PACKAGES),
    package_dir=DATA_PACKAGES,
)
