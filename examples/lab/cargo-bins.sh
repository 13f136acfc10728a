# Sourced by the project's scripts that run binaries they have just built (examples/lab/demo.sh).
#
# Where cargo puts binaries depends on CARGO_TARGET_DIR, `build.target-dir` in any .cargo/config.toml
# up the tree, CARGO_BUILD_TARGET and `--target`; a script that assumes `target/release` breaks for
# everyone who sets one of them. So the scripts ask cargo itself: they build with
# `--message-format=json-render-diagnostics`, and every binary cargo builds (or finds fresh) is
# reported on stdout as a `compiler-artifact` message with its `executable` path.

# cargo_bin_dir CARGO_COMMAND...
#
# Runs CARGO_COMMAND (a `cargo build ...` command line, possibly behind `sudo -u USER env ...`)
# with `--message-format=json-render-diagnostics` added, lets cargo's progress and compiler errors
# through to stderr, and prints the one directory that holds the binaries it built. Fails, saying
# why on stderr, when the build fails, when it built no binary, or when its binaries landed in more
# than one directory.
cargo_bin_dir() {
  local messages status executables dirs
  messages=$(mktemp)
  status=0
  "$@" --message-format=json-render-diagnostics >"$messages" || status=$?
  if ((status != 0)); then
    rm -f "$messages"
    echo "cargo_bin_dir: the build failed (exit $status): $*" >&2
    return 1
  fi
  # One JSON object per line; a binary's line carries "executable":"<path>" (null otherwise).
  executables=$(sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' "$messages")
  rm -f "$messages"
  if [[ -z $executables ]]; then
    echo "cargo_bin_dir: cargo built no binary: $*" >&2
    return 1
  fi
  dirs=$(printf '%s\n' "$executables" | xargs -d '\n' -n 1 dirname | sort -u)
  if [[ $(printf '%s\n' "$dirs" | wc -l) -ne 1 ]]; then
    printf 'cargo_bin_dir: binaries landed in more than one directory:\n%s\n' "$dirs" >&2
    return 1
  fi
  printf '%s\n' "$dirs"
}
