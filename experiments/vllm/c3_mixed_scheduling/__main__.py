from experiments.vllm.c3_mixed_scheduling.lab import main

raise SystemExit(main())
