"""Periodic jobs: plain async functions and their scheduler."""
