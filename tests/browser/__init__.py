"""The browser tests: a package, so that their shared server and Chromium (conftest.py, package scope) stop after
the last of them instead of at the end of the whole run."""
