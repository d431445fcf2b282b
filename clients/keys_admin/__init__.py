"""The security admins' CLI ``stafett-keys`` (entry point: ``main.main``)."""
