// server/main.cpp — jitgate-server: the command line (serve, migrate, keygen, check-config).
// Being built (issue 13); the sub-commands are wired here as their parts land.
#include <cstdio>

int main(int /*argc*/, char** /*argv*/) {
    std::fputs("usage: jitgate-server serve|migrate|keygen|check-config [--config FILE]\n", stderr);
    return 2;
}
