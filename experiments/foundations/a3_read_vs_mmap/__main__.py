from experiments.foundations.a3_read_vs_mmap.lab import main

raise SystemExit(main())
