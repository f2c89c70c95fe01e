"""Packaging beyond pyproject.toml: the report templates.

report_templates/ sits at the top of the source tree (next to the package, as
the design fixes it); here it is also installed as the data package
``iceaudit/report_templates/``, so an installed (non-editable) iceaudit finds
its templates (`iceaudit.report.render.templates_dir`).
"""
from setuptools import find_namespace_packages, setup

setup(
    packages=find_namespace_packages(include=["iceaudit*"]) + ["iceaudit.report_templates"],
    package_dir={"iceaudit.report_templates": "report_templates"},
)
