import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

# Tests are tiny and the machine is shared: one thread, set before any fixture runs.
torch.set_num_threads(1)

# The suite's classifiers are TorchScript files the tests themselves wrote: trusted for the
# whole run (subprocesses inherit it). tests/audit/test_trust.py unsets it to test the refusal.
os.environ["ICEAUDIT_TRUST_CLASSIFIER"] = "1"
