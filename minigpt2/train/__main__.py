"""``python -m minigpt2.train …`` — what ``torchrun --nproc_per_node=N -m minigpt2.train …`` runs in each process."""

import sys

from minigpt2.train.cli import main

sys.exit(main())
