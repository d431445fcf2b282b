"""``python -m clients.demo.flows``: the city's flows end to end."""

from clients.demo.flows import main

if __name__ == "__main__":
    raise SystemExit(main())
