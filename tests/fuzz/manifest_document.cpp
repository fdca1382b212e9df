// Fuzz target: a stored manifest document (JSON from PostgreSQL or Redis, or a `manifests put`
// file). Any bytes must load or fail with errors, never crash or throw; what loads must be stored
// as JSON that loads back to the same manifests.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "frontdoor/config/loader.hpp"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "manifest_document: %s\n%s\n", what, detail.c_str());
  std::abort();
}

const frontdoor::config::Config& base() {
  static const auto config = *frontdoor::config::load_config_string(
      "listeners: [{address: 127.0.0.1:0}]\nredis: {address: 127.0.0.1:6379}\n", "base.yaml").config;
  return config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace frontdoor::config;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const auto form : {ManifestsForm::one, ManifestsForm::list}) {
    const auto loaded = load_manifests_string(text, "doc", base(), form);
    if (loaded.manifests.empty() == loaded.errors.empty()) fail("manifests and errors both set or both empty", "");
    if (loaded.documents.size() != loaded.manifests.size()) fail("a document per manifest", "");
    for (const auto& e : loaded.errors)
      if (e.line < 0 || e.column < 0 || e.message.empty() || e.file != "doc") fail("malformed error", e.to_string());
    for (std::size_t i = 0; i < loaded.documents.size(); ++i) {
      const auto again = load_manifests_string(loaded.documents[i], "stored", base(), ManifestsForm::one);
      if (again.manifests.size() != 1) fail("the stored JSON does not load", loaded.documents[i]);
      if (!(again.manifests[0] == loaded.manifests[i])) fail("store -> load changed the manifest", loaded.documents[i]);
    }
  }
  return 0;
}
