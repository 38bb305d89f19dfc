// server/report/weasyprint.hpp — private to server/report: the PDF made from the report's HTML
// by WeasyPrint (Debian package `weasyprint`), run as a subprocess.
// Errors: Error(io) when the program is not installed (naming the package), cannot be run,
// fails or runs past its deadline; its stderr is in the message. Thread-safe, but it sets
// SIGPIPE to ignored for the process (jitgate-server ignores it anyway), so a WeasyPrint that
// exits early cannot kill the caller.
#pragma once

#include <string>

namespace jitgate::server::report {

// `weasyprint` from PATH, the HTML on its stdin, the PDF from its stdout.
std::string html_to_pdf(const std::string& html);

} // namespace jitgate::server::report
