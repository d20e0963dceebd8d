from experiments.vllm.c4_attention_graphs_quant.lab import main

raise SystemExit(main())
