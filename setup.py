"""Package discovery for the one-import-name layout.

`converters/` and `eval/` live at the top of the repository but are installed as
`matconv_port.converters` and `matconv_port.eval`, so nothing called `eval` or
`converters` lands in site-packages. Sub-packages are found automatically.
"""
from setuptools import find_packages, setup

ROOTS = {"matconv_port": "matconv_port", "matconv_port.converters": "converters", "matconv_port.eval": "eval"}


def _packages() -> list[str]:
    names = []
    for name, folder in ROOTS.items():
        names.append(name)
        names += [f"{name}.{sub}" for sub in find_packages(folder)]
    return names


setup(packages=_packages(), package_dir=ROOTS, package_data={"matconv_port": ["data/*"]})
