"""Test support shared by tests, bench and demo."""
