from experiments.foundations.b5_launch_overhead_trace.trace import main

raise SystemExit(main())
