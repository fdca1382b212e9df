#pragma once
// `frontdoor manifests ...`: the operator's tool for the manifest store (internal to src/cli).
#include <string_view>
#include <vector>

namespace frontdoor::cli {

int manifests_command(const std::vector<std::string_view>& args);

}  // namespace frontdoor::cli
