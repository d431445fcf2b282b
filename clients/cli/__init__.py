"""The officer CLI ``stafett`` (entry point: ``main.main``)."""
