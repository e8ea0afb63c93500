"""`python -m integration_core.orchestrator docs/orchestrator.md` regenerates the diagram."""

from integration_core.orchestrator.diagram import main

raise SystemExit(main())
