#!/usr/bin/env bash
# Trains dvq_jax on a Cloud TPU VM or pod slice: plans the run here (`python3 -m dvq_jax.plan`:
# the steps compiled for the slice; stops if they do not compile or fit), creates the VM, ships
# this checkout to every worker, installs '.[tpu]', runs `python3 -m dvq_jax.main` on all
# workers (streaming their output here), then deletes the VM. `--help` lists the flags;
# launch/README.md has recipes.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: launch/tpu_vm.sh --config=configs/X.py[:ARG] --run=NAME [flags] [-- --config.FIELD=VALUE ...]

First plans the run on this machine: `python3 -m dvq_jax.plan` compiles its train and
evaluation steps for the slice ahead of time (needs `pip install -e '.[tpu]'` here, no TPU) and stops,
before anything is created, if a step does not compile or does not fit the chips' memory.
Then creates a Cloud TPU VM (or pod slice), copies this checkout (git archive of HEAD) to every
worker, installs it with `pip install -e '.[tpu]'` into a Python 3.12 venv (jax needs >= 3.11;
TPU runtimes ship 3.10), runs
  python3 -m dvq_jax.main --config=... --workdir=BUCKET/RUN --config.distributed=True ...
on all workers, streams their output, and deletes the VM (also on failure or Ctrl-C) unless --keep.
Rerunning the same command resumes from the latest checkpoint in BUCKET/RUN.

Flags (environment fallback in brackets):
  --project=ID          GCP project                               [DVQ_PROJECT]   required
  --zone=ZONE           e.g. us-central2-b, us-west4-a             [DVQ_ZONE]      required
  --bucket=gs://B[/P]   where run directories go                  [DVQ_BUCKET]    required
  --run=NAME            run directory: workdir = BUCKET/NAME        [DVQ_RUN]       required
  --config=PATH[:ARG]   config file, relative to the repository root               required
  --accelerator=TYPE    v4-8, v4-32, v5litepod-8, v5p-16, v6e-8, ... [DVQ_ACCELERATOR] (v4-8)
  --version=RUNTIME     TPU software version; default by generation:  [DVQ_TPU_VERSION]
                        v2/v3/v4 tpu-ubuntu2204-base, v5litepod v2-alpha-tpuv5-lite,
                        v5p v2-alpha-tpuv5, v6e v2-alpha-tpuv6e
  --name=NAME           TPU VM name                              [DVQ_TPU_NAME]  (dvq-RUN)
  --tfds-dir=gs://B/P   a prepared TFDS data_dir (array_record) that every worker copies to
                        ~/tensorflow_datasets before training; passed as --config.data_dir
                        (the trainer never downloads, and array_record cannot read gs://)
                                                                 [DVQ_TFDS_DIR]  (none)
  --python-version=X.Y  Python of the workers' venv              [DVQ_PYTHON_VERSION] (3.12)
  --git-url=URL         clone URL on the workers instead of shipping local HEAD
  --git-ref=REF         branch, tag or commit to check out after --git-url
  --spot | --preemptible  cheaper capacity that can be reclaimed (rerun to resume)
  --python=PATH         the local Python that plans the run       [DVQ_PYTHON]    (python3)
  --no-plan             skip the plan (e.g. no libtpu on this machine)
  --reuse               use the existing VM NAME instead of creating it
  --no-install          skip the venv and pip install (the code is still shipped)
  --keep                do not delete the VM at the end or on failure
  --dry-run             print the commands, one per line, instead of running them
  -h, --help            show this help
Everything after `--` must be a --config.FIELD=VALUE override and is passed to dvq_jax.main.
Invalid settings end with one `error:` line and exit code 2, before any command runs.
EOF
}

# shellcheck source=_common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

default_runtime() {
  case "$1" in
    v2-* | v3-* | v4-*) printf 'tpu-ubuntu2204-base' ;;
    v5litepod-*) printf 'v2-alpha-tpuv5-lite' ;;
    v5p-*) printf 'v2-alpha-tpuv5' ;;
    v6e-*) printf 'v2-alpha-tpuv6e' ;;
    *) return 1 ;;
  esac
}

# ---------------------------------------------------------------- settings
project=${DVQ_PROJECT:-}
zone=${DVQ_ZONE:-}
bucket=${DVQ_BUCKET:-}
run_name=${DVQ_RUN:-}
accelerator=${DVQ_ACCELERATOR:-v4-8}
runtime=${DVQ_TPU_VERSION:-}
tpu_name=${DVQ_TPU_NAME:-}
python_version=${DVQ_PYTHON_VERSION:-3.12}
tfds_dir=${DVQ_TFDS_DIR:-}
python=${DVQ_PYTHON:-python3}
plan=true
config=""
git_url=""
git_ref=""
capacity=""
reuse=false
install=true
keep=false
dry_run=false
overrides=()

while (($# > 0)); do
  arg=$1
  shift
  case "${arg}" in
    --) overrides=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    --dry-run) dry_run=true; continue ;;
    --keep) keep=true; continue ;;
    --reuse) reuse=true; continue ;;
    --no-install) install=false; continue ;;
    --no-plan) plan=false; continue ;;
    --spot | --preemptible)
      [[ -z "${capacity}" || "${capacity}" == "${arg}" ]] \
        || die "--spot and --preemptible exclude each other; pass one"
      capacity=${arg}
      continue ;;
    --*=*) flag=${arg%%=*}; value=${arg#*=} ;;
    --*)
      (($# > 0)) || die "${arg} needs a value, e.g. ${arg}=VALUE"
      flag=${arg}; value=$1; shift ;;
    *) die "unexpected argument '${arg}'; put --config.FIELD=VALUE overrides after --" ;;
  esac
  case "${flag}" in
    --project) project=${value} ;;
    --zone) zone=${value} ;;
    --bucket) bucket=${value} ;;
    --run) run_name=${value} ;;
    --config) config=${value} ;;
    --accelerator) accelerator=${value} ;;
    --version) runtime=${value} ;;
    --name) tpu_name=${value} ;;
    --python-version) python_version=${value} ;;
    --tfds-dir) tfds_dir=${value} ;;
    --python) python=${value} ;;
    --git-url) git_url=${value} ;;
    --git-ref) git_ref=${value} ;;
    *) die "unknown flag ${flag}; see --help" ;;
  esac
done

# ---------------------------------------------------------------- validation (exit 2)
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
config_file=${config%%:*}
[[ -n "${config}" ]] || die "--config is required, e.g. --config=configs/cifar10.py"
[[ "${config_file}" != /* ]] \
  || die "--config must be relative to the repository root (the workers run from it), got ${config_file}"
[[ -f "${repo_root}/${config_file}" ]] \
  || die "config file ${config_file} does not exist under ${repo_root}"
[[ -n "${project}" ]] || die "--project (or DVQ_PROJECT) is required, e.g. --project=my-project"
[[ "${project}" =~ ^([a-z0-9.-]+:)?[a-z][-a-z0-9]{4,28}[a-z0-9]$ ]] \
  || die "--project=${project} is not a GCP project ID (6-30 lowercase letters, digits, hyphens)"
[[ -n "${zone}" ]] || die "--zone (or DVQ_ZONE) is required, e.g. --zone=us-central2-b"
[[ "${zone}" =~ ^[a-z]+-[a-z]+[0-9]+-[a-z]$ ]] \
  || die "--zone=${zone} is not a zone like us-central2-b"
[[ -n "${bucket}" ]] || die "--bucket (or DVQ_BUCKET) is required, e.g. --bucket=gs://my-bucket/dvq"
bucket=${bucket%/}
[[ "${bucket}" == gs://* ]] \
  || die "--bucket=${bucket} must start with gs:// (TPU workers write checkpoints to Cloud Storage)"
[[ "${bucket}" =~ ^gs://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]+)?$ ]] \
  || die "--bucket=${bucket} is not gs://BUCKET[/PREFIX] (bucket: 3-63 of a-z 0-9 . _ -)"
[[ -n "${run_name}" ]] \
  || die "--run (or DVQ_RUN) is required: the run directory under the bucket, e.g. --run=cifar10_dvq"
[[ "${run_name}" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] \
  || die "--run=${run_name} must be one path segment of letters, digits, . _ -"
[[ "${accelerator}" =~ ^v[0-9]+[a-z]*-[0-9]+$ ]] \
  || die "--accelerator=${accelerator} is not a TPU type like v4-8, v5litepod-16, v5p-8 or v6e-8"
if [[ -z "${runtime}" ]]; then
  runtime=$(default_runtime "${accelerator}") \
    || die "no default --version for ${accelerator}; pass one, e.g. --version=tpu-ubuntu2204-base"
fi
[[ "${runtime}" =~ ^[a-z0-9][a-z0-9.-]*$ ]] \
  || die "--version=${runtime} is not a TPU software version like tpu-ubuntu2204-base"
if [[ -z "${tpu_name}" ]]; then
  tpu_name=dvq-$(printf '%s' "${run_name}" | tr 'A-Z_.' 'a-z--')
  tpu_name=${tpu_name:0:63}
  while [[ "${tpu_name}" == *- ]]; do tpu_name=${tpu_name%-}; done
fi
[[ "${tpu_name}" =~ ^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$ ]] \
  || die "--name=${tpu_name} is not a valid TPU name (1-63 of a-z 0-9 -, letter first)"
[[ "${python_version}" =~ ^3\.[0-9]+$ ]] \
  || die "--python-version=${python_version} must look like 3.12"
[[ -z "${git_ref}" || -n "${git_url}" ]] || die "--git-ref needs --git-url"
tfds_dir=${tfds_dir%/}
[[ -z "${tfds_dir}" || "${tfds_dir}" =~ ^gs://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](/[^[:space:]]*)?$ ]] \
  || die "--tfds-dir=${tfds_dir} must be gs://BUCKET/PATH of a prepared TFDS data_dir"
for override in ${overrides[@]+"${overrides[@]}"}; do
  [[ "${override}" == --config.?*=* ]] \
    || die "'${override}' after -- is not a --config.FIELD=VALUE override"
done
if [[ -z "${git_url}" ]]; then
  git -C "${repo_root}" rev-parse --verify --quiet HEAD >/dev/null \
    || die "${repo_root} is not a git checkout with commits; pass --git-url"
  git -C "${repo_root}" cat-file -e "HEAD:${config_file}" 2>/dev/null \
    || die "config file ${config_file} is not committed; only HEAD is shipped (git commit it)"
  if [[ -n "$(git -C "${repo_root}" status --porcelain --untracked-files=no)" ]]; then
    printf 'warning: uncommitted changes in %s are not shipped; workers get HEAD\n' "${repo_root}" >&2
  fi
fi
if [[ "${dry_run}" == false ]]; then
  command -v gcloud >/dev/null \
    || die "gcloud not found; install the Google Cloud CLI (https://cloud.google.com/sdk)"
fi

# ---------------------------------------------------------------- commands
workdir=${bucket}/${run_name}
where=(--project="${project}" --zone="${zone}")
tpu=(gcloud compute tpus tpu-vm)
create=("${tpu[@]}" create "${tpu_name}" "${where[@]}" --accelerator-type="${accelerator}"
  --version="${runtime}")
if [[ -n "${capacity}" ]]; then
  create+=("${capacity}")
fi
delete=("${tpu[@]}" delete "${tpu_name}" "${where[@]}" --quiet)

# Deletes the VM on any exit after create (failure, Ctrl-C, hangup, kill) unless --keep.
owns_vm=false
tmp_dir=""
cleanup() {
  local status=$?
  if [[ "${owns_vm}" == true && "${keep}" == false ]]; then
    printf 'deleting %s after a failure (pass --keep to keep it)\n' "${tpu_name}" >&2
    run "${delete[@]}" \
      || printf 'error: delete failed; run: %s\n' "$(quote_line "${delete[@]}")" >&2
  fi
  if [[ -n "${tmp_dir}" ]]; then
    rm -rf "${tmp_dir}"
  fi
  exit "${status}"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

tmp_dir=$(mktemp -d)
tarball=${tmp_dir}/dvq_jax.tar.gz
if [[ -z "${git_url}" ]]; then
  fetch_code='rm -rf ~/dvq_jax && mkdir -p ~/dvq_jax && tar -xzf ~/dvq_jax.tar.gz -C ~/dvq_jax'
else
  fetch_code="rm -rf ~/dvq_jax && git clone --quiet $(remote_words "${git_url}") ~/dvq_jax"
  if [[ -n "${git_ref}" ]]; then
    fetch_code+=" && git -C ~/dvq_jax checkout --quiet $(remote_words "${git_ref}")"
  fi
fi
setup=${fetch_code}
if [[ "${install}" == true ]]; then
  # PIP_BREAK_SYSTEM_PACKAGES lets a --user install pass on PEP 668 images; old pip ignores it.
  setup+=" && PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --user --quiet --upgrade uv"
  setup+=" && ~/.local/bin/uv venv --clear --python $(remote_words "${python_version}") ~/dvq_venv"
  setup+=" && cd ~/dvq_jax"
  setup+=" && ~/.local/bin/uv pip install --python ~/dvq_venv/bin/python3 -e \".[tpu]\""
fi
data_arg=""
if [[ -n "${tfds_dir}" ]]; then
  setup+=" && mkdir -p ~/tensorflow_datasets"
  setup+=" && gcloud storage rsync --recursive $(remote_words "${tfds_dir}") ~/tensorflow_datasets"
  data_arg=" --config.data_dir=\"\${HOME}\"/tensorflow_datasets"  # the workers' shell expands it
fi
# Every worker runs the same command. config.distributed makes the trainer call
# jax.distributed.initialize(), which finds the workers in the TPU VM metadata: N processes on a
# pod slice, one on a single-host VM, so it is passed on every TPU type.
train="cd ~/dvq_jax && PYTHONUNBUFFERED=1 ~/dvq_venv/bin/python3 -m dvq_jax.main"
train+=" $(remote_words --config="${config}" --workdir="${workdir}" --config.distributed=True)"
train+="${data_arg}"
if ((${#overrides[@]} > 0)); then
  train+=" $(remote_words "${overrides[@]}")"
fi

# ---------------------------------------------------------------- run
if [[ "${plan}" == true ]]; then
  # The accelerator type names the slice (dvq_jax.plan maps it to its chip grid).
  plan_run=("${python}" -m dvq_jax.plan --config="${repo_root}/${config}"
    --topology="${accelerator}")
  run "${plan_run[@]}" ${overrides[@]+"${overrides[@]}"} \
    || die "the plan above stopped the launch before creating anything; fix the config, or pass --no-plan"
fi
if [[ "${reuse}" == false ]]; then
  run "${create[@]}"
fi
[[ "${dry_run}" == true ]] || owns_vm=true
if [[ -z "${git_url}" ]]; then
  run git -C "${repo_root}" archive --format=tar.gz --output="${tarball}" HEAD
  run "${tpu[@]}" scp "${tarball}" "${tpu_name}:dvq_jax.tar.gz" --worker=all "${where[@]}"
fi
run "${tpu[@]}" ssh "${tpu_name}" --worker=all "${where[@]}" --command="${setup}"
run "${tpu[@]}" ssh "${tpu_name}" --worker=all "${where[@]}" --ssh-flag=-oServerAliveInterval=60 \
  --command="${train}"
if [[ "${keep}" == false ]]; then
  owns_vm=false
  run "${delete[@]}"
else
  printf 'kept %s; delete it when done: %s\n' "${tpu_name}" "$(quote_line "${delete[@]}")" >&2
fi
printf 'outputs and checkpoints: %s\n' "${workdir}" >&2
