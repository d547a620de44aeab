"""``python -m clipclap_integrations``: the ``clipclap`` command."""

from .cli import main

raise SystemExit(main())
