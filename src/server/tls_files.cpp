#include "frontdoor/server/tls_files.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <spdlog/fmt/fmt.h>

#include <fstream>
#include <iterator>

#include "frontdoor/resilience/hash.hpp"

namespace frontdoor::server {

namespace asio = boost::asio;

bool operator==(const FileStamp& a, const FileStamp& b) noexcept {
  const auto same = [](const std::timespec& x, const std::timespec& y) {
    return x.tv_sec == y.tv_sec && x.tv_nsec == y.tv_nsec;
  };
  return a.device == b.device && a.inode == b.inode && a.size == b.size && same(a.modified, b.modified) &&
         same(a.changed, b.changed);
}

FileStamp stamp_file(const std::string& path) noexcept {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
}

TlsFilesStamp stamp_tls_files(const config::TlsConfig& tls) noexcept {
  return {stamp_file(tls.certificate_file), stamp_file(tls.private_key_file)};
}

std::uint64_t hash_tls_files(const config::TlsConfig& tls) {
  std::string bytes;
  for (const auto* path : {&tls.certificate_file, &tls.private_key_file}) {
    std::ifstream in(*path, std::ios::binary);
    if (!in) return 0;
    bytes.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    bytes.push_back('\0');  // where one file ends
  }
  return resilience::hash64(bytes);
}

namespace {

std::int64_t seconds_since_epoch(const ASN1_TIME* time) noexcept {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return 0;
  return static_cast<std::int64_t>(timegm(&tm));
}

// "-----BEGIN ENCRYPTED PRIVATE KEY-----" (PKCS#8) or "Proc-Type: 4,ENCRYPTED" (traditional PEM).
bool pem_is_encrypted(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.find("ENCRYPTED") != std::string::npos;
}

std::string utc_text(std::int64_t seconds) {
  const auto t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text;
}

}  // namespace

CertificateValidity certificate_validity(const asio::ssl::context& context) noexcept {
  const X509* certificate = SSL_CTX_get0_certificate(const_cast<asio::ssl::context&>(context).native_handle());
  if (certificate == nullptr) return {};
  return {seconds_since_epoch(X509_get0_notBefore(certificate)), seconds_since_epoch(X509_get0_notAfter(certificate))};
}

std::string certificate_validity_problem(const CertificateValidity& validity, std::int64_t now) {
  if (validity.not_after != 0 && now > validity.not_after) return "expired on " + utc_text(validity.not_after);
  if (validity.not_before != 0 && now + kCertificateClockSkewSeconds < validity.not_before)
    return "is not valid before " + utc_text(validity.not_before);
  return {};
}

// TLS 1.2's suites as Mozilla's "intermediate" profile lists them: ECDHE/DHE key exchange (forward
// secrecy) with AEAD ciphers. OpenSSL's default also took static-RSA and CBC/SHA-1 suites. TLS 1.3's
// own suites are all of that kind already.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

Expected<std::shared_ptr<asio::ssl::context>> make_tls_context(const config::TlsConfig& tls) {
  using Result = Expected<std::shared_ptr<asio::ssl::context>>;
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  boost::system::error_code ec;
  context->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                           asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                           asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use,
                       ec);
  SSL_CTX_set_options(context->native_handle(), SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_cipher_list(context->native_handle(), kTls12Ciphers) != 1)
    return Result::failure("the TLS 1.2 cipher list is refused by this OpenSSL");
  // An encrypted key would make OpenSSL ask for its passphrase on the terminal: the daemon (or its
  // control thread, at a renewal) would hang there. No passphrase is given; such a key fails to load.
  SSL_CTX_set_default_passwd_cb(context->native_handle(), [](char*, int, int, void*) { return 0; });
  if (!ec) context->use_certificate_chain_file(tls.certificate_file, ec);
  if (ec) return Result::failure("certificate " + tls.certificate_file + ": " + ec.message());
  context->use_private_key_file(tls.private_key_file, asio::ssl::context::pem, ec);
  if (ec) {
    return Result::failure("private key " + tls.private_key_file + ": " +
                           (pem_is_encrypted(tls.private_key_file)
                                ? std::string("it is encrypted (a passphrase cannot be given): decrypt it, e.g. "
                                              "openssl pkey -in KEY -out KEY.plain")
                                : ec.message()));
  }
  if (SSL_CTX_check_private_key(context->native_handle()) != 1)
    return Result::failure("private key " + tls.private_key_file + " does not match the certificate");
  return context;
}

}  // namespace frontdoor::server
