# uvslurm shell hook for zsh: eval "$(uvslurm shell-hook zsh)" in ~/.zshrc.
# Keeps UV_PROJECT_ENVIRONMENT pointing at this project's depot venv for the loaded modules.
# A prompt where nothing relevant changed compares one string and returns.
_uvslurm_hook() {
  local state="$PWD|${_LMFILES_:-}|${LOADEDMODULES:-}|${MODULEPATH:-}"
  [[ "$state" == "${_UVSLURM_HOOK_STATE:-}" ]] && return 0
  _UVSLURM_HOOK_STATE=$state
  local code prog=@PROGRAM@
  # after a change: one bash on the program `uvslurm shell-hook` wrote (this user's own file),
  # which answers without Python while `uvslurm env`'s record of the project holds; else
  # `uvslurm env`. On any failure (an untrusted project, a bad setting) uv must not stay
  # pointed elsewhere.
  if ! { [[ -f "$prog" && -O "$prog" && ! -L "$prog" ]] &&
    code=$(@BASH@ "$prog" zsh 2>/dev/null) }; then
    code=$(@UVSLURM@ env --shell zsh 2>/dev/null) ||
      code='if [ -n "${UVSLURM_ENV_PROJECT:-}" ]; then unset UV_PROJECT_ENVIRONMENT UVSLURM_ENV_PROJECT; fi'
  fi
  eval "$code"
  return 0
}
autoload -Uz add-zsh-hook
add-zsh-hook precmd _uvslurm_hook
