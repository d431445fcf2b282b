"""Service functions: one unit of work each, called by the handlers in gateway/views."""
