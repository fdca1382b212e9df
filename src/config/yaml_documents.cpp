#include "yaml_documents.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <sstream>

namespace frontdoor::config::detail {
namespace {

// Notes where a document's first event is, and nothing else.
class FirstEvent : public YAML::EventHandler {
 public:
  Position position;
  bool seen = false;

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { note(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { note(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override {
    note(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    note(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    note(mark);
  }
  void OnMapEnd() override {}

 private:
  void note(const YAML::Mark& mark) {
    if (!seen) position = mark_position(mark);
    seen = true;
  }
};

}  // namespace

Position mark_position(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0 || mark.column < 0) return {};
  return {mark.line + 1, mark.column + 1};
}

// Anything after the first document is an error: a second `---` document, or text yaml-cpp reads as
// one ("{...}," or "{...}\nkey: v" parse as two documents). Never loop over documents: on some inputs
// (a trailing ',') yaml-cpp 0.7 returns the same empty document forever.
std::optional<std::pair<Position, std::string>> after_first_document(std::string_view yaml) {
  std::istringstream in{std::string(yaml)};
  YAML::Parser parser(in);
  try {
    FirstEvent first;
    if (!parser.HandleNextDocument(first)) return std::nullopt;
    FirstEvent second;
    if (!parser.HandleNextDocument(second)) return std::nullopt;
    return std::pair{second.position,
                     std::string("unexpected content after the configuration (expected a single YAML document)")};
  } catch (const YAML::Exception& e) {
    return std::pair{mark_position(e.mark), "invalid YAML: " + e.msg};
  }
}

}  // namespace frontdoor::config::detail
