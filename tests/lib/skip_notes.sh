# tests/lib/skip_notes.sh - why CTest tests skipped (sourced; bash). Used by
# scripts/test.sh and scripts/matrix.sh.

# ctest_skip_notes LASTTEST_LOG [SKIPPED_NAME...]: one line per test that
# printed SKIP lines in CTest's LastTest.log ("   NAME: SKIP ...; SKIP ...",
# each line cut at 200 characters), whether it was skipped as a whole or only
# skipped some checks; then "   NAME: skipped (it printed no SKIP line)" for each
# SKIPPED_NAME that printed none. Nothing (status 0) when the log is missing.
ctest_skip_notes() {
    local log=$1
    shift
    [ -f "$log" ] || return 0
    awk -v named="$*" '
        BEGIN { n = split(named, list, " ") }
        /^[0-9]+\/[0-9]+ Test: / { name = $3; next }
        /^SKIP/ && name != "" {
            if (name in why) why[name] = why[name] "; " substr($0, 1, 200)
            else { order[++count] = name; why[name] = substr($0, 1, 200) }
        }
        END {
            for (i = 1; i <= count; i++) print "   " order[i] ": " why[order[i]]
            for (i = 1; i <= n; i++)
                if (!(list[i] in why)) print "   " list[i] ": skipped (it printed no SKIP line)"
        }' "$log"
}
