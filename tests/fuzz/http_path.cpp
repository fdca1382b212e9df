// Fuzz target: request-target path normalisation (http/path.hpp). Any bytes: never a crash; a
// rewritten target is no longer than the input, starts with "/", and is a fixed point (normalising
// it again changes nothing), so routing and the upstream cannot be handed two readings of it.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "frontdoor/http/path.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace frontdoor::http;
  const std::string_view target(reinterpret_cast<const char*>(data), size);
  std::string storage;
  const auto first = normalize_path(target, storage);
  if (first.verdict != NormalizedPath::Verdict::rewritten) return 0;
  const std::string once(first.target);
  if (once.size() > size || once.empty() || once.front() != '/') {
    std::fprintf(stderr, "http_path: %zu bytes rewritten to %zu: \"%s\"\n", size, once.size(), once.c_str());
    std::abort();
  }
  std::string again_storage;
  const auto again = normalize_path(once, again_storage);
  if (again.verdict != NormalizedPath::Verdict::unchanged) {
    std::fprintf(stderr, "http_path: \"%s\" is not a fixed point (verdict %d)\n", once.c_str(),
                 static_cast<int>(again.verdict));
    std::abort();
  }
  return 0;
}
