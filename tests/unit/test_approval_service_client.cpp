// tests/unit/test_approval_service_client.cpp — the approval service client's set-up, without
// a network: what it refuses before it ever sends a request.
#include "daemon/approval/service_client.hpp"

#include <curl/curl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "file_helpers.hpp"
#include "jitgate/error.hpp"

namespace {

namespace fs = std::filesystem;
using jitgate::Error;
using jitgate::test::write_all;

struct NoListener : jitgate::service::Listener {
    void on_service_outcome(const std::string&, const jitgate::service::Outcome&) override {}
};

class ServiceClientTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }
    void SetUp() override {
        std::string templ = ::testing::TempDir() + "jitgate-service-XXXXXX";
        ASSERT_NE(::mkdtemp(templ.data()), nullptr);
        m_dir = templ;
        for (const char* f : {"/ca.pem", "/client.pem", "/client.key"})
            write_all(m_dir + f, "not parsed before a transfer\n");
        m_settings.url = "https://approvals.example:8443";
        m_settings.ca_file = m_dir + "/ca.pem";
        m_settings.client_cert = m_dir + "/client.pem";
        m_settings.client_key = m_dir + "/client.key";
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(m_dir, ec);
    }

    std::string m_dir;
    jitgate::config::Config::Approval::Service m_settings;
    NoListener m_listener;
};

TEST_F(ServiceClientTest, StartsWithGoodSettings) {
    EXPECT_NO_THROW(jitgate::service::ServiceClient(m_settings, m_listener));
}

// Regression: curl_easy_setopt's return code was ignored, so an option libcurl refused was left
// at its default (here: no proxy at all) and every request failed later, or went out unproxied.
TEST_F(ServiceClientTest, RefusedCurlOptionIsAStartUpError) {
    // libcurl refuses a string option longer than CURL_MAX_INPUT_LENGTH (8,000,000 bytes).
    m_settings.proxy = "http://" + std::string(8'000'001, 'p') + ":3128";
    try {
        jitgate::service::ServiceClient client(m_settings, m_listener);
        ADD_FAILURE() << "the client must refuse to start with an option libcurl refused";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("refuses the option CURLOPT_PROXY"), std::string::npos) << e.what();
    }
}

} // namespace
