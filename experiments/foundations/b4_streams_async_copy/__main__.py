from experiments.foundations.b4_streams_async_copy.streams import main

raise SystemExit(main())
