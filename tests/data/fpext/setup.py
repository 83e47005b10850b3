# The value of MPICH_VERSION (set by the test modules mpich/1.0 and mpich/2.0) is compiled into
# the extension, and every build appends a line to $FPEXT_BUILD_LOG, so tests can tell which
# module set a wheel was built under and how many builds happened.
import os
import sys

from setuptools import Extension, setup

built_for = os.environ.get("MPICH_VERSION", "none")
log = os.environ.get("FPEXT_BUILD_LOG")
if log and "bdist_wheel" in sys.argv:
    with open(log, "a") as f:
        f.write(built_for + "\n")
setup(
    packages=["fpext"],
    ext_modules=[
        Extension("fpext._ext", ["fpext/_ext.c"], define_macros=[("BUILT_FOR", f'"{built_for}"')])
    ],
)
