"""Tools the benchmarks and the end-to-end tests share: start real instances, drive load, upload models.

``bench/`` never imports ``tests/``; the tests import these from here.
"""
