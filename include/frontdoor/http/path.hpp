#pragma once
// One path for routing and for the upstream. A proxy that routes on the bytes as sent while the
// upstream normalises them is bypassed: "/shop/x/../checkout" or "/shop/%63heckout" would take the
// policy of "shop/*" and still reach the checkout. So the target's path is normalised before
// routing (RFC 3986 §6.2.2 and §5.2.4, as nginx and Envoy do at the edge) and sent on as routed:
//   - percent-encoded unreserved characters are decoded ("%63" -> "c"), other escapes upper-cased;
//   - "." and ".." segments are resolved; ".." above the root is refused;
//   - repeated slashes become one;
// and what no upstream reads one way is refused: a malformed escape, a raw backslash, a fragment,
// and an encoded slash or backslash in the two segments that pick the manifest.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace frontdoor::http {

struct NormalizedPath {
  enum class Verdict : std::uint8_t { unchanged, rewritten, invalid };
  Verdict verdict = Verdict::unchanged;
  std::string_view target;  // rewritten: the new target, in `storage`
  std::string_view why;     // invalid: what is wrong, for the 400's body
};

// `target`: an origin-form request target (path and query; anything not starting with "/" is left
// alone). `storage` is grown (never shrunk) and written only when the path needs work, so a plain
// path costs one pass over its bytes and no allocation.
NormalizedPath normalize_path(std::string_view target, std::string& storage);

}  // namespace frontdoor::http
