// When a certificate counts as valid: a renewal outside its validity is refused (certificate_watch),
// one at start is served with a warning. The skew allowance lets a fresh certificate through when
// the issuer's clock is a little ahead of ours.
#include <gtest/gtest.h>

#include "frontdoor/server/tls_files.hpp"

using frontdoor::server::CertificateValidity;
using frontdoor::server::certificate_validity_problem;
using frontdoor::server::kCertificateClockSkewSeconds;

namespace {

constexpr std::int64_t kJan1 = 1577836800;  // 2020-01-01 00:00:00 UTC
constexpr std::int64_t kDay = 86400;

}  // namespace

TEST(CertificateValidity, ValidFromNotBeforeToNotAfterInclusive) {
  const CertificateValidity v{kJan1, kJan1 + kDay};
  EXPECT_EQ(certificate_validity_problem(v, kJan1), "");
  EXPECT_EQ(certificate_validity_problem(v, kJan1 + kDay), "");
  EXPECT_EQ(certificate_validity_problem(v, kJan1 + kDay + 1), "expired on 2020-01-02 00:00:00 UTC");
}

TEST(CertificateValidity, ANotBeforeAFewMinutesAheadIsClockSkewNotAFutureCertificate) {
  const CertificateValidity v{kJan1, kJan1 + kDay};
  EXPECT_EQ(certificate_validity_problem(v, kJan1 - kCertificateClockSkewSeconds), "");
  EXPECT_EQ(certificate_validity_problem(v, kJan1 - kCertificateClockSkewSeconds - 1),
            "is not valid before 2020-01-01 00:00:00 UTC");
}

TEST(CertificateValidity, UnknownBoundsAreNotHeldAgainstIt) {
  EXPECT_EQ(certificate_validity_problem(CertificateValidity{}, kJan1), "");
}
