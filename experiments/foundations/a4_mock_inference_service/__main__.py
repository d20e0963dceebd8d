from experiments.foundations.a4_mock_inference_service.lab import main

raise SystemExit(main())
