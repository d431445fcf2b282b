"""Crypto layer: the only package that imports ``nacl``."""
