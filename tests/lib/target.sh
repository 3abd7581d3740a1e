# tests/lib/target.sh - run binaries built for the configuration under test (sourced; POSIX sh).
#
# MEMDIAG_TARGET_EMULATOR is a command prefix for target binaries the host cannot
# execute itself, e.g. "qemu-i386 -L /" where the kernel has no IA-32 emulation;
# scripts/matrix.sh sets it for emulated rows. Empty: binaries run directly.

# run_target BINARY [ARGS...]: run BINARY the way this configuration can.
run_target() {
    # shellcheck disable=SC2086  # the prefix is a command line, split on purpose
    ${MEMDIAG_TARGET_EMULATOR:-} "$@"
}

# i386_runner: print how to run an i386 binary here ("native", "qemu-i386 -L /")
# or nothing when neither works. Builds and runs a one-line program with ${CXX:-g++} -m32.
# MEMDIAG_I386_RUNNER=native|qemu|none forces the answer (to try a path this host would not take).
i386_runner() {
    case ${MEMDIAG_I386_RUNNER:-} in
        native) echo native; return 0 ;;
        qemu) echo "qemu-i386 -L /"; return 0 ;;
        none) return 0 ;;
    esac
    _dir=$(mktemp -d "${TMPDIR:-/tmp}/memdiag-i386.XXXXXX") || return 0
    printf 'int main() { return sizeof(void*) == 4 ? 0 : 1; }\n' > "$_dir/probe.cpp"
    if "${CXX:-g++}" -m32 "$_dir/probe.cpp" -o "$_dir/probe" > /dev/null 2>&1; then
        if "$_dir/probe" > /dev/null 2>&1; then
            echo native
        elif command -v qemu-i386 > /dev/null 2>&1 && qemu-i386 -L / "$_dir/probe" > /dev/null 2>&1; then
            echo "qemu-i386 -L /"
        fi
    fi
    rm -rf "$_dir"
}
