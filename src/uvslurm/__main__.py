from uvslurm.cli import main

raise SystemExit(main())
