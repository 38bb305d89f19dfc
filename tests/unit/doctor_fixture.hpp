// tests/unit/doctor_fixture.hpp — a crafted host tree for the tests of `jitgatectl doctor`'s
// checks (tests/unit/test_doctor_*.cpp): a scratch directory that stands for "/", files written
// into it with the modes a test wants, owned by the test's own uid (the Root's trusted owner).
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cli/doctor/doctor.hpp"

namespace jitgate::test {

class DoctorTree : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = ::testing::TempDir() + "jitgate-doctor.XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        m_dir = tmpl;
        ::chmod(m_dir.c_str(), 0755);
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }

    // Writes the host file `path` ("/etc/sudo.conf") under the tree, directories 0755.
    void write(const std::string& path, const std::string& content, mode_t mode = 0644) {
        const std::filesystem::path p = m_dir + path;
        mkdirs(p.parent_path().string());
        {
            std::ofstream out(p, std::ios::binary | std::ios::trunc);
            out << content;
        }
        ASSERT_EQ(::chmod(p.c_str(), mode), 0) << p;
    }
    void mkdirs(const std::string& real_dir) {
        std::filesystem::create_directories(real_dir);
        for (std::filesystem::path d = real_dir; d.string().size() > m_dir.size(); d = d.parent_path())
            ::chmod(d.c_str(), 0755);
    }
    void mkdir(const std::string& path, mode_t mode = 0755) {
        mkdirs(m_dir + path);
        ASSERT_EQ(::chmod((m_dir + path).c_str(), mode), 0);
    }
    void chmod(const std::string& path, mode_t mode) { ASSERT_EQ(::chmod((m_dir + path).c_str(), mode), 0); }

    doctor::Root root() const { return doctor::Root(m_dir, static_cast<unsigned>(::getuid())); }

    // "check subject" of each finding, sorted: what a test compares exactly.
    static std::vector<std::string> ids(const doctor::Findings& f) {
        std::vector<std::string> v;
        for (const auto& x : f) v.push_back(x.check + " " + x.subject);
        std::sort(v.begin(), v.end());
        return v;
    }
    static std::vector<std::string> ids_of(const doctor::Findings& f, const std::string& prefix) {
        std::vector<std::string> v;
        for (const auto& x : ids(f))
            if (x.starts_with(prefix)) v.push_back(x);
        return v;
    }
    static const doctor::Finding* find(const doctor::Findings& f, const std::string& check) {
        for (const auto& x : f)
            if (x.check == check) return &x;
        return nullptr;
    }

    // Runs `work`; a hang (past `limit`) fails the test by ending the test program, since a
    // hung check cannot be interrupted.
    template <class Work>
    static void within(std::chrono::seconds limit, Work work) {
        std::mutex m;
        std::condition_variable cv;
        bool done = false;
        std::thread watchdog([&] {
            std::unique_lock lock(m);
            if (!cv.wait_for(lock, limit, [&] { return done; })) {
                std::fprintf(stderr, "FAILED: the check did not finish within %llds (a hang)\n",
                             static_cast<long long>(limit.count()));
                std::fflush(stderr);
                std::_Exit(1);
            }
        });
        work();
        {
            std::lock_guard lock(m);
            done = true;
        }
        cv.notify_one();
        watchdog.join();
    }

    std::string m_dir;
};

} // namespace jitgate::test
