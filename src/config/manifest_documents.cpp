// Manifests outside the configuration file: a stored document (the manifest store) or a file for
// `frontdoor manifests put`, walked by the configuration's own parser and checks.
#include "frontdoor/config/loader.hpp"
#include "parser.hpp"

namespace frontdoor::config {
namespace detail {

void Parser::parse_manifests(const YAML::Node& root, ManifestsForm form, Config& c,
                             std::vector<YAML::Node>& items) {
  const Field top{root, "", position_of(root)};
  if (form == ManifestsForm::one) {
    items.push_back(root);
    manifest_index_ = 0;
    manifest(Field{root, "manifests[0]", top.pos}, c.manifests.emplace_back());
  } else if (!root.IsMap()) {
    error(top, "expected a mapping with one key, manifests (a list of manifests), found " + found(root));
  } else {
    each(top, {"manifests"}, [&](const std::string&, const Field& f) {
      if (!f.node.IsSequence()) return list(f, "manifests", [](const Field&) {});
      for (const auto& item : f.node) items.push_back(item);
      list(f, "manifests", [&](const Field& item) {
        manifest_index_ = c.manifests.size();
        manifest(item, c.manifests.emplace_back());
      });
    });
    if (c.manifests.empty() && errors_.empty()) error(top, "no manifests (expected manifests: with at least one)");
  }
  for (const auto& d : deferred_) {
    auto& m = c.manifests[d.manifest];
    m.resilience = c.resilience;
    resilience(Field{d.node, d.path, d.pos}, *m.resilience);
  }
}

}  // namespace detail

ManifestsResult load_manifests_string(std::string_view text, const std::string& source_name, const Config& base,
                                      ManifestsForm form) {
  ManifestsResult result;
  if (text.size() > kMaxConfigBytes) {
    result.errors = too_large(source_name, text.size(), "manifests");
    return result;
  }
  try {
    YAML::Node root;
    try {
      root = YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
      result.errors = failure(source_name, mark_position(e.mark), "invalid YAML or JSON: " + detail::printable(e.msg));
      return result;
    }
    if (auto trailing = after_first_document(text)) {
      result.errors = failure(source_name, trailing->first, trailing->second);
      return result;
    }
    if (auto past = values_past(root, kMaxConfigValues)) {
      result.errors = too_many_values(source_name, *past, "the document");
      return result;
    }
    Config config = base;
    config.source = source_name;
    config.manifests.clear();
    SourceMap map;
    std::vector<YAML::Node> items;
    Parser(source_name, result.errors, map).parse_manifests(root, form, config, items);
    // Only what the manifests brought: the base was checked when it was loaded.
    for (auto& e : detail::check(config, &map))
      if (e.message.rfind("manifests[", 0) == 0) result.errors.push_back(std::move(e));
    detail::sort_errors(result.errors);
    detail::cap_errors(result.errors, source_name);
    if (!result.errors.empty()) return result;
    for (const auto& item : items) result.documents.push_back(detail::to_json(item));
    result.manifests = std::move(config.manifests);
  } catch (const std::exception& e) {
    result = {};
    result.errors = failure(source_name, {}, std::string("cannot load the manifests: ") + e.what());
  }
  return result;
}

}  // namespace frontdoor::config
