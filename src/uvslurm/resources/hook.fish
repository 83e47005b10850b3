# uvslurm shell hook for fish: uvslurm shell-hook fish | source   (in ~/.config/fish/config.fish)
# Keeps UV_PROJECT_ENVIRONMENT pointing at this project's depot venv for the loaded modules.
# A prompt where nothing relevant changed compares one string and returns.
function _uvslurm_hook --on-event fish_prompt
    set -l state "$PWD|$_LMFILES_|$LOADEDMODULES|$MODULEPATH"
    if test "$state" = "$_UVSLURM_HOOK_STATE"
        return 0
    end
    set -g _UVSLURM_HOOK_STATE $state
    # on any failure (an untrusted project, a bad setting) uv must not stay pointed elsewhere
    begin
        @UVSLURM@ env --shell fish 2>/dev/null
        or echo 'if set -q UVSLURM_ENV_PROJECT; set -e UV_PROJECT_ENVIRONMENT UVSLURM_ENV_PROJECT; end'
    end | source
end
