// cli/doctor/parse.hpp — small text helpers the doctor's checks share. Pure; never throw
// except std::bad_alloc.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cli/doctor/doctor.hpp"

namespace jitgate::doctor {

// The pieces of `s` between `sep` (empty pieces kept; a last empty piece after a final `sep`
// dropped, so "a\nb\n" is two lines).
std::vector<std::string> split(std::string_view s, char sep);
// The fields of a line of /etc/passwd or /etc/group: every piece, an empty last one too.
std::vector<std::string> fields(std::string_view line, char sep);
// Whitespace-separated words.
std::vector<std::string> words(std::string_view s);
std::string trim(std::string_view s);
std::string lower(std::string_view s);
std::string base_name(std::string_view path);
// The directory part of an absolute path ("/etc/pam.d/sshd" -> "/etc/pam.d").
std::string dir_name(std::string_view path);
// Whether `path` is `prefix` or lies under it.
bool under(std::string_view path, std::string_view prefix);
// The names of a glob's last component matched against `names` (fnmatch, no dot files unless
// the pattern starts with a dot).
bool glob_match(const std::string& pattern, const std::string& name);

inline void add(Findings& out, std::string check, Severity severity, std::string subject, std::string what,
                std::string why, std::string fix) {
    out.push_back({std::move(check), severity, std::move(subject), std::move(what), std::move(why), std::move(fix)});
}

// "could not check": a file that must be read and could not be (fail closed).
void add_unreadable(Findings& out, const std::string& check, const std::string& path, const std::string& error);

} // namespace jitgate::doctor
