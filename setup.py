"""Packaging for the corpus pipelines.

The same file serves a local install (`pip install -e .`) and Dataflow's
`--setup_file ./setup.py`, which builds an sdist of it and installs it on every
worker: the package, its row schema (`schemas/`, installed as
`pipelines.schemas`) and the bundled sample inputs all travel with it.
"""
import ctypes.util
import os
import re
import shutil
import subprocess
from pathlib import Path

from setuptools import Command, find_packages, setup
from setuptools.command.build import build as _build

# System library the workers need: libarchive streams .7z members (libarchive-c is only the
# binding). Beam's SDK containers are Debian; when the library is missing and the build runs
# as root with apt-get at hand (a Dataflow worker installing this package), it is installed.
SYSTEM_PACKAGES = ["libarchive13"]


class InstallSystemLibraries(Command):
    """Install the Debian packages of SYSTEM_PACKAGES where libarchive is missing."""

    description = "install the system libraries the pipeline needs, where they are missing"
    user_options: list = []

    def initialize_options(self):
        pass

    def finalize_options(self):
        pass

    def run(self):
        if ctypes.util.find_library("archive"):
            return
        if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
            print("libarchive is missing: install it (Debian: apt-get install libarchive13) "
                  "to read .7z and tar inputs")
            return
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        *SYSTEM_PACKAGES], check=True)


class build(_build):
    sub_commands = _build.sub_commands + [("install_system_libraries", None)]


def _version() -> str:
    """The package's version, kept once in ``pipelines/__init__.py``."""
    with open(os.path.join("pipelines", "__init__.py"), encoding="utf-8") as stream:
        return re.search(r'^__version__ = "([^"]+)"', stream.read(), re.MULTILINE).group(1)


setup(
    name="multiqa-corpus-pipelines",
    version=_version(),
    description=(
        "Apache Beam pipelines that build the multi-source question/answer "
        "training corpus for sentence-embedding models."
    ),
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["pipelines", "pipelines.*"]) + ["pipelines.schemas"],
    package_dir={"pipelines.schemas": "schemas"},
    package_data={
        "pipelines.schemas": ["*.json"],
        # Each source's reference tables and bundled sample (upstream layout, any file type).
        "pipelines.sources": ["*/*.json", "*/sample/**/*", "*/sample/**/.*"],
    },
    # Every `corpus` command works with these: the pipeline on any runner (Dataflow's needs
    # the gcp extra of Beam), gs:// storage, the Hub, the report's charts. The versions
    # known to work together are pinned in requirements.txt.
    install_requires=[
        "apache-beam[gcp]>=2.77,<3",
        "pyarrow>=24,<26",  # datasets needs >=24, Beam 2.77 <26
        "lxml>=5",
        "libarchive-c>=5",
        "ijson>=3.3",
        "orjson>=3.9.7,<4",
        "xxhash>=3.4",
        "isal>=1.6",
        "numpy>=1.24",
        "smart-open[gcs]>=7",
        "google-cloud-storage>=3",
        "requests>=2.31",
        "datasets>=5,<6",
        "pyyaml>=6",  # the dataset card's front matter (corpus export)
        "matplotlib>=3.8",
    ],
    # Heavier parts some users need; pipelines.extras names the extra when one is missing.
    extras_require={
        "s3": ["apache-beam[aws]>=2.77,<3", "boto3>=1.34", "smart-open[s3]>=7"],
        "train": ["torch>=2.4", "sentence-transformers>=5", "transformers>=4.50", "accelerate>=1.0"],
        "test": ["pytest>=8", "hypothesis>=6", "py7zr>=1", "gcp-storage-emulator>=2024",
                 "moto[server]>=5", "scipy>=1.11", "build>=1.2", "datasketch>=1.6"],
    },
    entry_points={"console_scripts": ["corpus=pipelines.__main__:main"]},
    cmdclass={"build": build, "install_system_libraries": InstallSystemLibraries},
)
