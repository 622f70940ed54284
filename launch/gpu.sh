#!/usr/bin/env bash
# Trains dvq_jax on one machine with one or more NVIDIA GPUs: this one, or another over ssh
# (--host). One process sees every GPU and the trainer shards the batch over all of them.
# `--help` lists the flags; launch/README.md has recipes.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: launch/gpu.sh --config=configs/X.py[:ARG] --workdir=DIR [flags] [-- --config.FIELD=VALUE ...]

Installs this checkout with `pip install -e '.[gpu]'` (jax[cuda12]) and runs
  python3 -m dvq_jax.main --config=... --workdir=...
as one process that sees all GPUs (the trainer shards each batch over them). Locally it runs
from the repository root; with --host it ships HEAD (git archive) to ~/dvq_jax_launch on that
machine (replacing it) and runs there over ssh, streaming the output. Rerunning the same
command resumes from the latest checkpoint in the workdir.

Flags (environment fallback in brackets):
  --config=PATH[:ARG]   config file, relative to the repository root              required
  --workdir=DIR         local directory or gs://BUCKET/RUN        [DVQ_WORKDIR]  required;
                        relative paths are taken from the current directory; with --host it
                        must be absolute or gs://
  --host=[USER@]HOST    run on this machine over ssh              [DVQ_GPU_HOST]  (here)
  --python=PYTHON       interpreter to install into and run with   [DVQ_PYTHON]   (python3)
  --gpus=0,1,...        restrict to these GPUs (CUDA_VISIBLE_DEVICES) [DVQ_GPUS]  (all)
  --mem-fraction=F      XLA_PYTHON_CLIENT_MEM_FRACTION, 0 < F <= 1  [DVQ_MEM_FRACTION] (0.9)
  --no-install          skip pip install (dvq_jax and jax[cuda12] already installed)
  --dry-run             print the commands, one per line, instead of running them
  -h, --help            show this help
Everything after `--` must be a --config.FIELD=VALUE override and is passed to dvq_jax.main.
Invalid settings end with one `error:` line and exit code 2, before any command runs.
EOF
}

# shellcheck source=_common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

# ---------------------------------------------------------------- settings
workdir=${DVQ_WORKDIR:-}
host=${DVQ_GPU_HOST:-}
python=${DVQ_PYTHON:-python3}
gpus=${DVQ_GPUS:-}
mem_fraction=${DVQ_MEM_FRACTION:-0.9}
config=""
install=true
dry_run=false
overrides=()

while (($# > 0)); do
  arg=$1
  shift
  case "${arg}" in
    --) overrides=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    --dry-run) dry_run=true; continue ;;
    --no-install) install=false; continue ;;
    --*=*) flag=${arg%%=*}; value=${arg#*=} ;;
    --*)
      (($# > 0)) || die "${arg} needs a value, e.g. ${arg}=VALUE"
      flag=${arg}; value=$1; shift ;;
    *) die "unexpected argument '${arg}'; put --config.FIELD=VALUE overrides after --" ;;
  esac
  case "${flag}" in
    --config) config=${value} ;;
    --workdir) workdir=${value} ;;
    --host) host=${value} ;;
    --python) python=${value} ;;
    --gpus) gpus=${value} ;;
    --mem-fraction) mem_fraction=${value} ;;
    *) die "unknown flag ${flag}; see --help" ;;
  esac
done

# ---------------------------------------------------------------- validation (exit 2)
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
config_file=${config%%:*}
[[ -n "${config}" ]] || die "--config is required, e.g. --config=configs/cifar10.py"
[[ "${config_file}" != /* ]] \
  || die "--config must be relative to the repository root (the run starts there), got ${config_file}"
[[ -f "${repo_root}/${config_file}" ]] \
  || die "config file ${config_file} does not exist under ${repo_root}"
[[ -n "${workdir}" ]] \
  || die "--workdir (or DVQ_WORKDIR) is required, e.g. --workdir=/data/runs/cifar10_dvq or gs://my-bucket/cifar10_dvq"
[[ "${workdir}" =~ ^[^[:space:]]+$ ]] || die "--workdir='${workdir}' must not contain whitespace"
if [[ "${workdir}" == *://* ]]; then
  [[ "${workdir}" =~ ^gs://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](/.*)?$ ]] \
    || die "--workdir=${workdir}: only gs://BUCKET/... or a local path is supported"
elif [[ -n "${host}" ]]; then
  [[ "${workdir}" == /* ]] || die "--workdir=${workdir} must be absolute (or gs://) with --host"
elif [[ "${workdir}" != /* ]]; then
  workdir=${PWD}/${workdir}
fi
if [[ -n "${host}" ]]; then
  [[ "${host}" =~ ^([A-Za-z0-9_][A-Za-z0-9._-]*@)?[A-Za-z0-9][A-Za-z0-9.-]*$ ]] \
    || die "--host=${host} is not [USER@]HOST"
fi
[[ -n "${python}" && "${python}" != -* ]] || die "--python=${python} is not an interpreter"
[[ -z "${gpus}" || "${gpus}" =~ ^[0-9]+(,[0-9]+)*$ ]] \
  || die "--gpus=${gpus} must be GPU indices like 0,1,2,3"
[[ "${mem_fraction}" =~ ^(0?\.[0-9]+|1|1\.0*)$ && "${mem_fraction}" =~ [1-9] ]] \
  || die "--mem-fraction=${mem_fraction} must be a number in (0, 1], e.g. 0.9"
for override in ${overrides[@]+"${overrides[@]}"}; do
  [[ "${override}" == --config.?*=* ]] \
    || die "'${override}' after -- is not a --config.FIELD=VALUE override"
done
if [[ -n "${host}" ]]; then
  git -C "${repo_root}" rev-parse --verify --quiet HEAD >/dev/null \
    || die "${repo_root} is not a git checkout with commits; --host ships HEAD"
  git -C "${repo_root}" cat-file -e "HEAD:${config_file}" 2>/dev/null \
    || die "config file ${config_file} is not committed; --host ships only HEAD (git commit it)"
  if [[ -n "$(git -C "${repo_root}" status --porcelain --untracked-files=no)" ]]; then
    printf 'warning: uncommitted changes in %s are not shipped; %s gets HEAD\n' \
      "${repo_root}" "${host}" >&2
  fi
elif [[ "${dry_run}" == false ]]; then
  command -v nvidia-smi >/dev/null \
    || die "nvidia-smi not found: no NVIDIA driver here; run on a GPU machine or pass --host"
fi

# ---------------------------------------------------------------- commands
run_env=(PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION="${mem_fraction}")
if [[ -n "${gpus}" ]]; then
  run_env+=(CUDA_VISIBLE_DEVICES="${gpus}")
fi
main_args=(-m dvq_jax.main --config="${config}" --workdir="${workdir}"
  ${overrides[@]+"${overrides[@]}"})

if [[ -z "${host}" ]]; then
  if [[ "${python}" == \~/* ]]; then
    python=${HOME}/${python#\~/}
  fi
  run cd "${repo_root}"
  run nvidia-smi -L
  if [[ "${install}" == true ]]; then
    run "${python}" -m pip install -e ".[gpu]"
  fi
  run env "${run_env[@]}" "${python}" "${main_args[@]}"
else
  # A leading ~/ must stay unquoted so the remote shell expands it to the remote home.
  if [[ "${python}" == \~/* ]]; then
    # shellcheck disable=SC2088 # the tilde is for the remote shell, not this one
    printf -v remote_python '~/%s' "$(remote_words "${python#\~/}")"
  else
    remote_python=$(remote_words "${python}")
  fi
  tmp_dir=$(mktemp -d)
  trap 'rm -rf "${tmp_dir}"' EXIT
  tarball=${tmp_dir}/dvq_jax.tar.gz
  setup='nvidia-smi -L && rm -rf ~/dvq_jax_launch && mkdir -p ~/dvq_jax_launch'
  setup+=' && tar -xzf ~/dvq_jax.tar.gz -C ~/dvq_jax_launch'
  if [[ "${install}" == true ]]; then
    setup+=" && cd ~/dvq_jax_launch && ${remote_python} -m pip install -e \".[gpu]\""
  fi
  train="cd ~/dvq_jax_launch && env $(remote_words "${run_env[@]}") ${remote_python}"
  train+=" $(remote_words "${main_args[@]}")"
  run git -C "${repo_root}" archive --format=tar.gz --output="${tarball}" HEAD
  run scp -q "${tarball}" "${host}:dvq_jax.tar.gz"
  run ssh "${host}" "${setup}"
  run ssh -o ServerAliveInterval=60 "${host}" "${train}"
fi
if [[ -n "${host}" && "${workdir}" != gs://* ]]; then
  printf 'outputs and checkpoints: %s:%s\n' "${host}" "${workdir}" >&2
else
  printf 'outputs and checkpoints: %s\n' "${workdir}" >&2
fi
