import sys

from experiments.trace.run import main

sys.exit(main())
