"""Push: open sockets per device and the change notifier."""
