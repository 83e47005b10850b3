# uvslurm shell hook for fish: uvslurm shell-hook fish | source   (in ~/.config/fish/config.fish)
# Keeps UV_PROJECT_ENVIRONMENT pointing at this project's depot venv for the loaded modules.
# A prompt where nothing relevant changed compares one string and returns.
function _uvslurm_hook --on-event fish_prompt
    set -l state "$PWD|$_LMFILES_|$LOADEDMODULES|$MODULEPATH"
    if test "$state" = "$_UVSLURM_HOOK_STATE"
        return 0
    end
    set -g _UVSLURM_HOOK_STATE $state
    set -l prog @PROGRAM@
    set -l code
    # after a change: one bash on the program `uvslurm shell-hook` wrote (this user's own
    # file), which answers without Python while `uvslurm env`'s record of the project holds;
    # else `uvslurm env`. On any failure (an untrusted project, a bad setting) uv must not stay
    # pointed elsewhere.
    set -l rc 1
    if test -f "$prog"; and test -O "$prog"; and not test -L "$prog"
        set code (@BASH@ "$prog" fish 2>/dev/null | string collect)
        set rc $pipestatus[1]
    end
    if test $rc -ne 0
        set code (@UVSLURM@ env --shell fish 2>/dev/null | string collect)
        set rc $pipestatus[1]
    end
    if test $rc -ne 0
        set code 'if set -q UVSLURM_ENV_PROJECT; set -e UV_PROJECT_ENVIRONMENT UVSLURM_ENV_PROJECT; end'
    end
    printf '%s\n' $code | source
end
