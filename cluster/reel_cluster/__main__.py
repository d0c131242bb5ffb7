import sys

from reel_cluster.cli import main

sys.exit(main())
