// CertificateWatch: files that changed on disk but hold the same bytes are no renewal, even when
// the first look caught them half rewritten.
#include "frontdoor/server/certificate_watch.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace frontdoor::server {
namespace {

void write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

TEST(CertificateWatch, AKeyCaughtHalfRewrittenThenReadWholeIsNoRenewal) {
  char pattern[] = "/tmp/fd-certwatch-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  config::ListenerConfig lc;
  lc.name = "main";
  lc.tls = config::TlsConfig{dir + "/cert.pem", dir + "/key.pem"};
  write(lc.tls->certificate_file, "CERTIFICATE");
  write(lc.tls->private_key_file, "KEY");
  ListenerInfo live;
  live.name = "main";
  live.tls = true;
  live.tls_files = *lc.tls;
  live.tls_stamp = stamp_tls_files(*lc.tls);
  live.tls_content = hash_tls_files(*lc.tls);
  // A sidecar rewriting the same key truncates it first: the watch's first look sees this...
  write(lc.tls->private_key_file, "");
  // ...and by the time the listener's files are read, the same bytes are back.
  int reads = 0;
  int retargets = 0;
  const CertificateWatch::LiveListeners listeners{{"main", &live}};
  boost::asio::io_context control;
  CertificateWatch watch(
      control, listeners,
      [&](const config::ListenerConfig&, std::string&) {
        ++reads;
        auto info = std::make_unique<ListenerInfo>(live);
        info->tls_content = live.tls_content;  // what it read: the same bytes
        return info;
      },
      [&](const std::string&, std::unique_ptr<ListenerInfo>) { ++retargets; });
  const std::vector<config::ListenerConfig> configured{lc};
  watch.watch(configured, std::chrono::milliseconds(0));
  watch.check();
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(retargets, 0) << "the same bytes were taken as a renewal: another context kept for good";
  watch.check();  // and not read again while the files stay so
  EXPECT_EQ(reads, 1);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace frontdoor::server
