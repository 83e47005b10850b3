# shellcheck shell=bash
# uvslurm shell hook, after a directory or module change: what `uvslurm env --shell SHELL`
# prints, without Python (docs/design.md, "The shell hook without Python"). `uvslurm shell-hook`
# writes this file, after the prolog functions that compute the fingerprint and key, into a
# private directory beside the records that `uvslurm env` leaves there: one per project
# directory, holding the settings it found and every check that led to them (files read or
# found absent, by identity; directories found private or not; environment variables). When
# every check still gives the same answer, the settings are still what `uvslurm env` would find,
# and the fingerprint is computed here by the prolog's own code. Exit 3: not decided here (no
# record, or one that no longer holds); the hook then runs `uvslurm env`, which writes a new one.
#   bash hook-<hash>.sh bash|zsh|fish

# _uvslurm_hook_emit SHELL [VENV PROJECT]: the shell code that sets UV_PROJECT_ENVIRONMENT and
# UVSLURM_ENV_PROJECT, or without them unsets what an earlier one set (commands/env.py, render)
_uvslurm_hook_emit() {
  local k v q
  if [ $# -eq 1 ]; then
    if [ "$1" = fish ]; then
      printf '%s\n' 'if set -q UVSLURM_ENV_PROJECT; set -e UV_PROJECT_ENVIRONMENT UVSLURM_ENV_PROJECT; end;'
    else
      printf '%s\n' 'if [ -n "${UVSLURM_ENV_PROJECT:-}" ]; then unset UV_PROJECT_ENVIRONMENT UVSLURM_ENV_PROJECT; fi'
    fi
    return 0
  fi
  for k in UV_PROJECT_ENVIRONMENT UVSLURM_ENV_PROJECT; do
    if [ "$k" = UV_PROJECT_ENVIRONMENT ]; then v=$2; else v=$3; fi
    if [ "$1" = fish ]; then
      q=${v//\\/\\\\}
      printf "set -gx %s '%s';\n" "$k" "${q//\'/\\\'}"
    else
      printf "export %s='%s'\n" "$k" "${v//\'/\'\\\'\'}"
    fi
  done
}

# _uvslurm_hook_which VAR NAME: NAME's absolute path as Python's shutil.which and
# os.path.abspath find it on PATH (a NAME with a slash: itself), or fail where that is not
# certain to be the same (no PATH, a relative or unnormalized result)
_uvslurm_hook_which() {
  local d found="" IFS=:
  local -a dirs
  if [[ $2 == */* ]]; then
    [ -f "$2" ] && [ -x "$2" ] && found=$2
  else
    # (PATH not from the environment: bash's own default, unlike Python's)
    [[ ${PATH@a} == *x* ]] || return 1
    read -r -a dirs <<<"$PATH"
    for d in "${dirs[@]}"; do
      [ -n "$d" ] || return 1
      if [ -f "$d/$2" ] && [ -x "$d/$2" ]; then found=$d/$2 && break; fi
    done
  fi
  [[ $found == /* && $found != *//* && $found != */./* && $found != */../* ]] || return 1
  [[ $found != */. && $found != */.. ]] || return 1
  printf -v "$1" '%s' "$found"
}

# _uvslurm_hook_name NAME: a variable name (what ${!NAME} may expand without running anything);
# patterns, not =~: bash compiles a regular expression at each use
_uvslurm_hook_name() { [[ -n $1 && $1 != [0-9]* && $1 != *[!A-Za-z0-9_]* ]]; }

_uvslurm_hook_main() {
  local hook_shell=$1 store=${BASH_SOURCE[0]%/*} d top="" rec tag a b name out n id u m
  # (names unlike the prolog functions' locals: printf -v sets the innermost variable)
  local LC_ALL=C hook_fp hook_hash uv="" hook_depot ok=""
  local -a walk=() stats=()
  local -A want=() priv=() seen=() mine=()
  case $hook_shell in bash | zsh | fish) ;; *) return 2 ;; esac
  # the directory as Python sees it (symlinks resolved)
  cd -P . 2>/dev/null || return 3
  [[ $PWD != *[$'\x1e\x1f']* ]] || return 3
  # the nearest pyproject.toml upward, as project.find_project looks: never above a directory
  # that is not this user's (its mode is checked below, with one stat for everything)
  d=$PWD
  while :; do
    if [ -f "$d/pyproject.toml" ]; then top=$d && break; fi
    [ -O "$d" ] && ! [ -L "$d" ] || break
    walk+=("$d")
    [ "$d" != / ] || break
    d=${d%/*}
    d=${d:-/}
  done
  if [ -z "$top" ]; then
    _uvslurm_hook_emit "$hook_shell"
    return 0
  fi
  # the record `uvslurm env` left for this directory, the user's own
  name=${top//%/%25}
  rec=$store/r${name//\//%2F}
  [ ${#rec} -lt $((${#store} + 240)) ] && [ -f "$rec" ] && [ -O "$rec" ] && ! [ -L "$rec" ] ||
    return 3
  while IFS=$'\x1f' read -r -d $'\x1e' tag a b; do
    case $tag in
      v) [ "$a" = 1 ] && ok=1 ;;
      k) [ "$a" = "$top" ] || return 3 ;;
      h) [ "$a" = "${BASH_SOURCE[0]##*/}" ] || return 3 ;;
      e) _uvslurm_hook_name "$a" && [ -n "${!a+x}" ] && [ "${!a}" = "$b" ] || return 3 ;;
      u) _uvslurm_hook_name "$a" && [ -z "${!a+x}" ] || return 3 ;;
      f) want[$a]=$b && stats+=("$a") ;;
      a) ! [ -f "$a" ] || return 3 ;;
      p | n) priv[$a]=$tag && stats+=("$a") ;;
      s) [[ $a == UVSLURM_?* && $a != *[!A-Z_]* ]] && export "$a=$b" || return 3 ;;
      c) uv=$a ;;
      *) return 3 ;;
    esac
  done <"$rec"
  [ -n "$ok" ] && [ -n "${UVSLURM_DEPOT:-}" ] && [ -n "${UVSLURM_PROJECT_ID:-}" ] || return 3
  hook_depot=$UVSLURM_DEPOT
  if [ -e "$hook_depot" ] || [ -L "$hook_depot" ]; then
    [ -f "$hook_depot/.uvslurm-depot" ] || return 3
    stats+=("$hook_depot")
    priv[$hook_depot]=p
  fi
  # one process for every identity and mode: name, inode, mtime, size, owner, mode
  if [ ${#walk[@]} -gt 0 ] || [ ${#stats[@]} -gt 0 ]; then
    out=$(stat -L --printf '%n\037%i %.9Y %s\037%u\037%a\036' -- "${walk[@]}" "${stats[@]}" \
      2>/dev/null)
    while IFS=$'\x1f' read -r -d $'\x1e' n id u m; do
      seen[$n]=$id
      if [ "$u" = "$EUID" ] && ! (((8#$m) & 8#022)) && ! [ -L "$n" ]; then mine[$n]=1; fi
    done <<<"$out"
  fi
  # a directory on the way up that others can write to ends the search, as in Python (one
  # that stat did not answer for, gone meanwhile or no stat here, is not decided here)
  for d in "${walk[@]}"; do
    [ -n "${seen[$d]:-}" ] || return 3
    if [ -z "${mine[$d]:-}" ]; then
      _uvslurm_hook_emit "$hook_shell"
      return 0
    fi
  done
  for n in "${!want[@]}"; do
    [ "${seen[$n]:-}" = "${want[$n]}" ] && [ -f "$n" ] || return 3
  done
  for n in "${!priv[@]}"; do
    [ -n "${seen[$n]:-}" ] || return 3
    if [ -n "${mine[$n]:-}" ]; then [ "${priv[$n]}" = p ] || return 3; else
      [ "${priv[$n]}" = n ] || return 3; fi
  done
  # the uv `uvslurm env` would name (nodeenv.settings_for: uvtool.find_uv)
  _uvslurm_hook_which UVSLURM_UV "${uv:-uv}" || return 3
  export UVSLURM_UV UVSLURM_MODE=fingerprint
  _uvslurm_uv=$UVSLURM_UV
  # what the prolog's main does before the fingerprint (main.sh), then its fingerprint mode
  _uvslurm_mkdepot
  _uvslurm_privtmp
  _uvslurm_fingerprint hook_fp
  _uvslurm_hook_hash hook_hash "$hook_fp" "$store/hashes" || return 3
  _uvslurm_hook_emit "$hook_shell" "$hook_depot/$UVSLURM_PROJECT_ID/shell-$hook_hash" \
    "$UVSLURM_PROJECT"
}

# _uvslurm_hook_hash VAR TEXT MEMO: the fingerprint's hash, as the prolog's fingerprint mode
# gives it (key.sh, _uvslurm_report: 12 hex digits of the sha256 of TEXT and a newline),
# remembered in MEMO per text (newlines as \x1f, as in a depot's .keys): a change of directory
# or modules back to one seen before forks nothing here
_uvslurm_hook_hash() {
  local enc=${2//$'\n'/$'\x1f'} k v h="" n=0 memo=$3
  if [[ $2 == *[$'\x1e\x1f']* ]]; then
    memo=""
  elif [ -f "$memo" ] && [ -O "$memo" ] && ! [ -L "$memo" ]; then
    while IFS=$'\x1e' read -r k v; do
      n=$((n + 1))
      if [ "$v" = "$enc" ] && [ ${#k} -eq 12 ] && [[ $k != *[!0-9a-f]* ]]; then
        printf -v "$1" '%s' "$k"
        return 0
      fi
    done <"$memo"
  fi
  read -r h _ < <(sha256sum <<<"$2")
  h=${h:0:12}
  [ ${#h} -eq 12 ] && [[ $h != *[!0-9a-f]* ]] || return 1
  if [ -n "$memo" ] && { ! [ -e "$memo" ] || { [ -O "$memo" ] && ! [ -L "$memo" ]; }; }; then
    # one line per fingerprint seen; a memo of many starts again
    if ((n >= 64)); then : >"$memo"; fi
    printf '%s\x1e%s\n' "$h" "$enc" >>"$memo"
  fi 2>/dev/null
  printf -v "$1" '%s' "$h"
}

_uvslurm_hook_main "$@"
