import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

# Tests are tiny and the machine is shared: one thread, set before any fixture runs.
torch.set_num_threads(1)
