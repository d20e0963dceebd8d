from experiments.foundations.a2_producer_consumer_queues.lab import main

raise SystemExit(main())
