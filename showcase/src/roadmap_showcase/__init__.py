"""Roadmap Lab showcase: runs every project's demo and renders a static report."""
