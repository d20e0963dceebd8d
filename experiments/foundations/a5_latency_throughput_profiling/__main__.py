from experiments.foundations.a5_latency_throughput_profiling.lab import main

raise SystemExit(main())
