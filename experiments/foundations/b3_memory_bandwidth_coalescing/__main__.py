from experiments.foundations.b3_memory_bandwidth_coalescing.bandwidth import main

raise SystemExit(main())
