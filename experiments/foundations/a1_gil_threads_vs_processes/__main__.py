from experiments.foundations.a1_gil_threads_vs_processes.lab import main

raise SystemExit(main())
