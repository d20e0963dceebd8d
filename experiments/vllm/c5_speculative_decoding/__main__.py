from experiments.vllm.c5_speculative_decoding.spec_decoding import main

raise SystemExit(main())
