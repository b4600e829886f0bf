"""Package layout: models/, runtimes/, profiling/ and firmware/ ship inside the wheel as ondevice.<name>."""
import os

from setuptools import setup

MAPPED = {"ondevice": "ondevice", "ondevice.models": "models", "ondevice.runtimes": "runtimes",
          "ondevice.profiling": "profiling", "ondevice.firmware": "firmware"}


def _packages():
    pkgs = []
    for pkg, root in MAPPED.items():
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if not x.startswith((".", "__pycache__", "build"))]
            if "__init__.py" in files:
                rel = os.path.relpath(d, root)
                pkgs.append(pkg if rel == "." else pkg + "." + rel.replace(os.sep, "."))
    return pkgs


setup(
    packages=_packages(),
    package_dir=MAPPED,
    package_data={"ondevice.slim": ["rules/*.toml", "rules/*.md"],
                  "ondevice.models": ["**/*.pt", "**/*.pt2", "**/*.json", "**/*.md"],
                  "ondevice.profiling": ["*.md", "protocol_vectors/*.json", "boards/*.toml"],
                  "ondevice.firmware": ["**/*"]},
    include_package_data=True,
)
