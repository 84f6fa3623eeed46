"""Helpers that several test modules share; fixtures live in the conftest.py files.

A test module imports from here (or from tests/unit/fakes.py, tests/unit/httpfakes.py), never
from another test module (tests/unit/test_layers.py checks it).
"""
