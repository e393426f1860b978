from trickbench.datasets.cli import main

raise SystemExit(main())
