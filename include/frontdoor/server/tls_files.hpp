#pragma once
// A TLS listener's certificate and key files. They change under the same paths when a certificate
// is renewed (cert-manager rewrites the Secret, the kubelet swaps the mounted files), so the
// control thread stamps them when it reads them and reads them again when the stamp moves.
#include <boost/asio/ssl/context.hpp>
#include <ctime>
#include <memory>
#include <string>
#include <sys/types.h>

#include "frontdoor/config/config.hpp"
#include "frontdoor/core/address.hpp"

namespace frontdoor::server {

// What stat(2) says of one file (through symlinks): another inode, size or time is another file.
struct FileStamp {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = -1;  // -1: cannot be read
  std::timespec modified{};
  std::timespec changed{};

  friend bool operator==(const FileStamp& a, const FileStamp& b) noexcept;
};
FileStamp stamp_file(const std::string& path) noexcept;

struct TlsFilesStamp {
  FileStamp certificate;
  FileStamp private_key;
  friend bool operator==(const TlsFilesStamp&, const TlsFilesStamp&) noexcept = default;
};
TlsFilesStamp stamp_tls_files(const config::TlsConfig& tls) noexcept;
// A hash of both files' bytes (0 if either cannot be read).
std::uint64_t hash_tls_files(const config::TlsConfig& tls);

// When a certificate is valid: its notBefore and notAfter, in seconds since the epoch (0 when unknown).
struct CertificateValidity {
  std::int64_t not_before = 0;
  std::int64_t not_after = 0;
};
CertificateValidity certificate_validity(const boost::asio::ssl::context& context) noexcept;
// A notBefore this far ahead of our clock still counts as valid: an issuer's clock (or ours) a little
// off must not hold a fresh certificate back.
constexpr std::int64_t kCertificateClockSkewSeconds = 300;
// "" when `validity` covers `now`; else what is wrong ("expired on 2026-11-30 12:00:00 UTC", or
// "not valid before ...").
std::string certificate_validity_problem(const CertificateValidity& validity, std::int64_t now);

// Server-side TLS: TLS 1.2+ (1.2 with forward-secret AEAD suites only, Mozilla's "intermediate"),
// no renegotiation, the certificate chain and key from PEM files.
Expected<std::shared_ptr<boost::asio::ssl::context>> make_tls_context(const config::TlsConfig& tls);

}  // namespace frontdoor::server
