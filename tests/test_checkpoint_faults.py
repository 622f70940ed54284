"""Storage faults while restoring: retried, quarantined, or stopped with nothing moved.

Small states saved and restored in process; the end-to-end fallbacks of a training run are in
tests/test_reliability.py and the two-process digests in tests/test_multidevice.py.
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from dvq_jax.errors import CheckpointError
from dvq_jax.errors import ConfigError
from dvq_jax.training import checkpointing
from dvq_jax.training import digests
from tests.conftest import run_on_8_devices


def _state(step: int) -> dict:
  # 256 KiB of weights: stored uncompressed in a data file of their own, so one flipped bit
  # there reaches the restored array.
  return {"step": jnp.int32(step),
          "params": {"w": jnp.arange(65536, dtype=jnp.float32).reshape(256, 256) + step}}


def _abstract() -> dict:
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
                      jax.eval_shape(lambda: _state(0)))


def _checkpointer(workdir: pathlib.Path, log=None) -> checkpointing.Checkpointer:
  return checkpointing.Checkpointer(str(workdir), 3, log or (lambda _: None),
                                    retry_delays_s=(0.0, 0.0))


@pytest.fixture(name="workdir")
def _workdir(tmp_path) -> pathlib.Path:
  checkpointer = _checkpointer(tmp_path)
  for step in (2, 4):
    checkpointer.save(step, _state(step))
  checkpointer.close()
  return tmp_path


def _restore(workdir: pathlib.Path, log=None):
  checkpointer = _checkpointer(workdir, log)
  try:
    return checkpointer.restore_latest(_abstract())
  finally:
    checkpointer.close()


def _listing(workdir: pathlib.Path) -> list[str]:
  return sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*"))


def _data_files(workdir: pathlib.Path, step: int) -> list[pathlib.Path]:
  files = list((workdir / "checkpoints" / str(step) / "state").glob("ocdbt.process_*/d/*"))
  return [max(files, key=lambda p: p.stat().st_size)]  # the one holding the weights


def _fail_restores(monkeypatch, error: Exception, times: int) -> list[int]:
  calls = []
  restore = ocp.CheckpointManager.restore

  def failing(self, step, *args, **kwargs):
    calls.append(step)
    if len(calls) <= times:
      raise error
    return restore(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, "restore", failing)
  return calls


def test_a_read_that_fails_once_is_retried_and_restores_the_newest(workdir, monkeypatch):
  calls = _fail_restores(monkeypatch, OSError("connection reset by peer"), times=1)
  logged = []
  before = _listing(workdir)
  state = _restore(workdir, logged.append)
  assert int(state["step"]) == 4 and calls == [4, 4]
  np.testing.assert_array_equal(state["params"]["w"], _state(4)["params"]["w"])
  assert any("checkpoint 4: OSError: connection reset by peer; retrying" in m for m in logged)
  assert _listing(workdir) == before


@pytest.mark.parametrize("error", [
    TimeoutError("read timed out"),
    ValueError("UNAVAILABLE: GCS request failed with 503"),  # as tensorstore raises it
    ValueError("tree structures do not match"),  # no evidence of damage: not retried either
])
def test_a_persistent_or_unknown_error_stops_with_one_line_and_moves_nothing(
    workdir, monkeypatch, error):
  calls = _fail_restores(monkeypatch, error, times=100)
  before = _listing(workdir)
  with pytest.raises(CheckpointError) as raised:
    _restore(workdir)
  message = str(raised.value)
  assert "\n" not in message
  assert message.startswith(f"checkpoint 4 in {workdir / 'checkpoints'} could not be read")
  assert "nothing was moved" in message and str(error) in message
  assert calls == ([4] if checkpointing.fault_kind(error) == "other" else [4, 4, 4])
  assert _listing(workdir) == before


def test_retriable_errors_of_the_storage_client_are_transient():
  class ServiceUnavailable(Exception):  # google.api_core.exceptions' name for a 503
    pass

  class TooManyRequests(Exception):
    pass

  for error in (ServiceUnavailable("503"), TooManyRequests("429"), ConnectionError("reset")):
    assert checkpointing.fault_kind(error) == "transient"
  wrapped = RuntimeError("restore failed")
  wrapped.__cause__ = ValueError("DATA_LOSS: Error decoding manifest")
  assert checkpointing.fault_kind(wrapped) == "damaged"


@pytest.mark.parametrize("damage,reason", [("truncate", "OUT_OF_RANGE"),
                                           ("flip a bit", "do not match the digest"),
                                           ("lose the digest", "process_0.json is missing")])
def test_damaged_newest_checkpoint_is_moved_aside_and_the_previous_one_restored(
    workdir, damage, reason):
  for path in _data_files(workdir, 4):
    data = bytearray(path.read_bytes())
    if damage == "truncate":
      path.write_bytes(data[: len(data) // 2])
    elif damage == "flip a bit":
      data[len(data) // 2] ^= 0x10
      path.write_bytes(bytes(data))
  if damage == "lose the digest":
    (workdir / "checkpoints" / "4" / "digest" / "process_0.json").unlink()
  logged = []
  state = _restore(workdir, logged.append)
  assert int(state["step"]) == 2
  assert any(m.startswith("checkpoint 4 is damaged") and reason in m for m in logged), logged
  assert (workdir / "corrupt_checkpoints" / "step_4" / "state").is_dir()
  assert not (workdir / "checkpoints" / "4").exists()


def test_on_an_object_store_a_damaged_checkpoint_is_marked_not_copied(workdir, monkeypatch):
  monkeypatch.setattr(checkpointing, "_renames_in_place", lambda path: False)
  for path in _data_files(workdir, 4):
    path.write_bytes(path.read_bytes()[:100])
  assert int(_restore(workdir)["step"]) == 2
  marker = workdir / "corrupt_checkpoints" / "step_4.txt"
  assert "OUT_OF_RANGE" in marker.read_text()
  assert (workdir / "checkpoints" / "4" / "state").is_dir()  # left where it was
  checkpointer = _checkpointer(workdir)
  assert checkpointer.steps() == [2]  # a new run skips it without reading it again
  checkpointer.save(3, _state(3))  # older than the marked step: orbax saves it all the same
  checkpointer.save(4, _state(4))  # training reached step 4 again: the bad one is replaced
  checkpointer.close()
  assert not marker.exists()
  assert int(_restore(workdir)["step"]) == 4


def test_restore_arrays_refuses_a_damaged_checkpoint(workdir):
  for path in _data_files(workdir, 4):
    path.write_bytes(path.read_bytes()[:100])
  checkpointer = _checkpointer(workdir)
  try:
    with pytest.raises(ConfigError, match="checkpoint 4 .* is damaged or altered"):
      checkpointer.restore_arrays(4)
    assert int(checkpointer.restore_arrays(2)["step"]) == 2
  finally:
    checkpointer.close()
  assert (workdir / "checkpoints" / "4").is_dir()  # inspection moves nothing


def test_digests_of_a_state_sharded_over_8_devices_check_each_shard(tmp_path):
  script = f"""
import jax, jax.numpy as jnp, numpy as np, json
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from dvq_jax.training import checkpointing, digests
mesh = Mesh(np.array(jax.devices()), ("data",))
sharded = NamedSharding(mesh, P("data"))
w = jax.device_put(jnp.arange(64 * 4, dtype=jnp.float32).reshape(64, 4), sharded)
state = {{"step": jnp.int32(1), "params": {{"w": w}}}}
checkpointer = checkpointing.Checkpointer({str(tmp_path)!r}, 2)
checkpointer.save(1, state)
checkpointer.wait()
record = json.loads(open({str(tmp_path / "checkpoints/1/digest/process_0.json")!r}).read())
print("indices", sorted(e["index"][0][0] for e in record["shards"] if "w" in e["leaf"]))
abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding),
                        state)
print("sharded", int(checkpointer.restore_latest(abstract)["step"]))
print("whole", int(checkpointer.restore_arrays(1)["step"]))
changed = {{"step": state["step"], "params": {{"w": w.at[40, 1].add(1.0)}}}}
print("changed", digests.mismatches(changed, [record]))
checkpointer.close()
"""
  result = run_on_8_devices(script)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
  assert lines["indices"] == str(list(range(0, 64, 8)))  # one digest per shard
  assert lines["sharded"] == lines["whole"] == "1"
  assert lines["changed"] == str(["params/w"])


def test_mismatches_names_a_leaf_the_digest_does_not_cover():
  state = {"a": np.ones(3, np.float32), "b": np.zeros(2, np.int32)}
  record = digests.shard_records(digests.host_copies({"a": state["a"]}))
  assert digests.mismatches(state, [record]) == ["b"]


def test_a_step_damaged_twice_is_quarantined_twice(workdir):
  for _ in range(2):
    for path in _data_files(workdir, 4):
      path.write_bytes(path.read_bytes()[:100])
    assert int(_restore(workdir)["step"]) == 2
    checkpointer = _checkpointer(workdir)
    checkpointer.save(4, _state(4))  # training reaches step 4 again
    checkpointer.close()
  kept = sorted(p.name for p in (workdir / "corrupt_checkpoints").iterdir())
  assert len(kept) == 2 and kept[0] == "step_4" and kept[1].startswith("step_4_")
  assert int(_restore(workdir)["step"]) == 4
