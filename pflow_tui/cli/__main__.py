from pflow_tui.cli import main

raise SystemExit(main())
