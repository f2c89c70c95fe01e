"""Damaged records an earlier run left (a sweep index, a run key) that parse as JSON but are not objects: one message."""
import pytest
from iceaudit.errors import UserError
from iceaudit.sweep import SweepIndex
from iceaudit.audit.directory import prepare_out, CHECKPOINT, RUN_FILE
def test_list_index():
    with pytest.raises(UserError, match="not a JSON object"):
        SweepIndex.from_json("[1, 2]")
def test_list_run_key(tmp_path):
    (tmp_path / CHECKPOINT).mkdir()
    (tmp_path / CHECKPOINT / RUN_FILE).write_text("[1]")
    with pytest.raises(UserError, match="is damaged"):
        prepare_out(tmp_path, True, {"a": 1})
