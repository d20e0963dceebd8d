from experiments.foundations.b2_warp_divergence.divergence import main

raise SystemExit(main())
