"""Roadmap Lab shared library: settings, logging, results, machine facts, embedded models and data.

Import the submodules you need (``roadmap_lab.results``, ``roadmap_lab.models``, ...); heavy
dependencies (torch, transformers, pandas) load only when a function needs them.
"""
