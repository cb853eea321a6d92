import os
import subprocess
import sys

REACH = [sys.executable, "-c", "from pipeline.core.failpoints import failpoint; failpoint('sinks.before_commit')"]


def reach(env: dict[str, str]) -> int:
    base = {key: value for key, value in os.environ.items() if not key.startswith("AMUR_FAILPOINTS")}
    return subprocess.run(REACH, env=base | env, timeout=60).returncode


def test_a_listed_point_kills_every_time_and_an_unlisted_one_never():
    assert reach({"AMUR_FAILPOINTS": "stories.before_commit,sinks.before_commit"}) == -9
    assert reach({"AMUR_FAILPOINTS": "stories.before_commit,sinks.before_commit"}) == -9
    assert reach({"AMUR_FAILPOINTS": "stories.before_commit"}) == 0


def test_with_a_marks_directory_a_point_kills_only_its_first_arrival(tmp_path):
    once = {"AMUR_FAILPOINTS": "sinks.before_commit", "AMUR_FAILPOINTS_ONCE": str(tmp_path)}
    assert reach(once) == -9
    assert reach(once) == 0
    assert [path.name for path in tmp_path.iterdir()] == ["sinks.before_commit"]
