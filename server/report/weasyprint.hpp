// server/report/weasyprint.hpp — private to server/report: the PDF made from the report's HTML
// by WeasyPrint (Debian package `weasyprint`), run as a subprocess.
// Errors: Error(io) when the program is not installed (naming the package), cannot be run,
// fails or runs past its deadline; its stderr is in the message. Thread-safe, but it sets
// SIGPIPE to ignored for the process (jitgate-server ignores it anyway), so a WeasyPrint that
// exits early cannot kill the caller.
#pragma once

#include <chrono>
#include <string>

namespace jitgate::server::report {

// A year of a large fleet is many pages.
constexpr std::chrono::milliseconds k_weasyprint_deadline = std::chrono::minutes(10);

// `weasyprint` from PATH, the HTML on its stdin, the PDF from its stdout, all within `deadline`
// (writing the HTML too: a WeasyPrint that stops reading cannot hold the caller). On every
// failure the program is killed (SIGKILL) and reaped before the Error is thrown.
std::string html_to_pdf(const std::string& html, std::chrono::milliseconds deadline = k_weasyprint_deadline);

} // namespace jitgate::server::report
