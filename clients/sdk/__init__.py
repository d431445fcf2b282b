"""The public SDK surface (implementation: ``clients.sdk.client``)."""

from clients.sdk.client import (
    StafettClient,
)

__all__ = [
    "StafettClient",
]
