# Shell helpers shared by launch/tpu_vm.sh and launch/gpu.sh (sourced, not run).
# shellcheck shell=bash

die() {
  printf 'error: %s\n' "$1" >&2
  exit 2
}

# Prints the words as one line that a POSIX shell splits back into the same words.
quote_line() {
  local word flag escaped line=""
  for word in "$@"; do
    flag=""
    if [[ "${word}" =~ ^--[A-Za-z0-9.-]+= ]]; then
      flag=${BASH_REMATCH[0]}
      word=${word#"${flag}"}
    fi
    if [[ "${word}" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
      line+="${flag}${word} "
    else
      escaped=${word//\'/\'\\\'\'}
      line+="${flag}'${escaped}' "
    fi
  done
  printf '%s\n' "${line% }"
}

# Runs one command, or only prints it under --dry-run; real runs echo it to stderr first.
run() {
  if [[ "${dry_run}" == true ]]; then
    quote_line "$@"
    return 0
  fi
  printf '+ %s\n' "$(quote_line "$@")" >&2
  if [[ "$1" == cd ]]; then
    cd "$2"
  else
    "$@"
  fi
}

# Quotes each word for the remote bash with printf %q (no string is ever re-parsed locally).
remote_words() {
  local quoted
  printf -v quoted '%q ' "$@"
  printf '%s' "${quoted% }"
}
