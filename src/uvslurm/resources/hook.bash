# shellcheck shell=bash
# uvslurm shell hook for bash: eval "$(uvslurm shell-hook bash)" in ~/.bashrc.
# Keeps UV_PROJECT_ENVIRONMENT pointing at this project's depot venv for the loaded modules.
# A prompt where nothing relevant changed compares one string and returns.
_uvslurm_hook() {
  local state="$PWD|${_LMFILES_:-}|${LOADEDMODULES:-}|${MODULEPATH:-}"
  [ "$state" = "${_UVSLURM_HOOK_STATE:-}" ] && return 0
  _UVSLURM_HOOK_STATE=$state
  local code prog=@PROGRAM@
  # after a change: one bash on the program `uvslurm shell-hook` wrote (this user's own file),
  # which answers without Python while `uvslurm env`'s record of the project holds; else
  # `uvslurm env`. On any failure (an untrusted project, a bad setting) uv must not stay
  # pointed elsewhere.
  if ! { [ -f "$prog" ] && [ -O "$prog" ] && ! [ -L "$prog" ] &&
    code=$(@BASH@ "$prog" bash 2>/dev/null); }; then
    code=$(@UVSLURM@ env --shell bash 2>/dev/null) ||
      code='if [ -n "${UVSLURM_ENV_PROJECT:-}" ]; then unset UV_PROJECT_ENVIRONMENT UVSLURM_ENV_PROJECT; fi'
  fi
  eval "$code"
  return 0
}
case ";${PROMPT_COMMAND:-};" in
  *";_uvslurm_hook;"*) ;;
  *) PROMPT_COMMAND="_uvslurm_hook${PROMPT_COMMAND:+;$PROMPT_COMMAND}" ;;
esac
