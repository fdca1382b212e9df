// Fuzz target: the YAML configuration loader. Any bytes must load or fail with errors, never crash
// or throw; whatever loads must survive to_yaml -> load unchanged and pass validate().
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "frontdoor/config/loader.hpp"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "config_yaml: %s\n%s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace frontdoor::config;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const LoadResult loaded = load_config_string(text, "fuzz.yaml");
  if (loaded.config.has_value() == !loaded.errors.empty()) fail("config and errors both set or both empty", "");
  for (const auto& e : loaded.errors) {
    if (e.line < 0 || e.column < 0 || (e.line == 0) != (e.column == 0) || e.message.empty())
      fail("malformed error", e.to_string());
    if (e.file != "fuzz.yaml") fail("error names the wrong file", e.to_string());
  }
  if (!loaded.config) return 0;

  if (const auto errors = validate(*loaded.config); !errors.empty())
    fail("a loaded config does not validate", errors.front().to_string());
  const std::string yaml = to_yaml(*loaded.config);
  const LoadResult again = load_config_string(yaml, "fuzz.yaml");
  if (!again.config) fail("to_yaml output does not load", again.errors.front().to_string() + "\n" + yaml);
  if (!(*again.config == *loaded.config)) fail("to_yaml -> load changed the config", yaml);
  if (to_yaml(*again.config) != yaml) fail("to_yaml is not a fixed point", yaml);
  return 0;
}
