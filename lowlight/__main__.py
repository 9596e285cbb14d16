from lowlight.cli.main import main

raise SystemExit(main())
