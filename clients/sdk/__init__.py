"""The public SDK surface: ``from clients.sdk import StafettClient``.

Everything else in ``clients/sdk/`` (transport, directory sync, sealing, results, ...)
is private to the SDK and may change; integrators import only what ``__all__`` names,
from here, ``clients.admin`` and ``clients.errors``.
"""

from clients.sdk.client import StafettClient

__all__ = ["StafettClient"]
