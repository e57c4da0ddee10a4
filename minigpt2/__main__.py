import sys

from minigpt2.cli import main

sys.exit(main())
