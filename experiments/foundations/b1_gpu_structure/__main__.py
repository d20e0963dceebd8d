from experiments.foundations.b1_gpu_structure.structure import main

raise SystemExit(main())
