"""Build script: the C codec is optional; without a compiler the pure-Python twin is used.

``SMISK_NO_EXTENSIONS=1`` skips the extension; a failed compile only prints a warning
(``optional=True``), so ``pip install`` never fails for want of a compiler.
"""

import os

from setuptools import Extension, setup

extensions = []
if os.environ.get("SMISK_NO_EXTENSIONS") != "1" and os.path.exists("smisk/_codec.c"):
    extensions.append(Extension("smisk._codec", ["smisk/_codec.c"], optional=True))

setup(ext_modules=extensions)
