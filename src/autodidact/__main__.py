import sys

from autodidact.cli import main

sys.exit(main())
