from experiments.vllm.c2_paged_kv_cache.lab import main

raise SystemExit(main())
