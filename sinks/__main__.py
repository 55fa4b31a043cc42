"""``python -m sinks``: the ClickHouse landing process."""
from sinks.landing import main

raise SystemExit(main())
