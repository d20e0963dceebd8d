from experiments.vllm.c1_prefill_decode_batching.lab import main

raise SystemExit(main())
