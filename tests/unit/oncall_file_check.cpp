// tests/unit/oncall_file_check.cpp — reads an on-call file with the reader jitgated and
// jitgate-server use (windows::read_on_call_file), for unit.oncall_sync: the sync's output is
// checked by the real reader, not by a look at its text. Prints one "user from to" line per
// entry (Unix seconds); on a problem prints it on stderr and exits 1.
#include "lib/time_windows.hpp"

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: oncall_file_check <on-call file>\n");
        return 2;
    }
    std::vector<jitgate::windows::OnCall> list;
    if (const auto problem = jitgate::windows::read_on_call_file(argv[1], list)) {
        std::fprintf(stderr, "%s\n", problem->c_str());
        return 1;
    }
    for (const auto& o : list)
        std::printf("%s %lld %lld\n", o.user.c_str(), static_cast<long long>(o.from_unix),
                    static_cast<long long>(o.to_unix));
    return 0;
}
