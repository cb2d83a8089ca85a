"""Test configuration.

On CI (the environment variable CI is set) hypothesis runs derandomized, so a
CI run is reproducible; locally it explores new examples on every run.
"""
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
