#include "yaml_documents.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <vector>

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
    return std::pair{mark_position(e.mark), "invalid YAML: " + printable(e.msg)};
  }
}

std::optional<Position> values_past(const YAML::Node& root, std::size_t budget) {
  // Depth first with a stack of iterators: no recursion, memory bounded by kMaxWalkedDepth.
  struct Level {
    YAML::const_iterator next, end;
    bool map;
  };
  std::vector<Level> stack;
  const auto enter = [&](const YAML::Node& node) {
    if (stack.size() < kMaxWalkedDepth && (node.IsMap() || node.IsSequence()))
      stack.push_back({node.begin(), node.end(), node.IsMap()});
  };
  enter(root);
  std::size_t values = 0;
  while (!stack.empty()) {
    Level& level = stack.back();
    if (level.next == level.end) {
      stack.pop_back();
      continue;
    }
    const auto item = *level.next++;
    const bool map = level.map;
    const YAML::Node value = map ? item.second : static_cast<const YAML::Node&>(item);
    if (++values > budget) return mark_position(map ? item.first.Mark() : value.Mark());
    enter(value);  // (may reallocate the stack: `level` is not used after this)
  }
  return std::nullopt;
}

}  // namespace frontdoor::config::detail

namespace frontdoor::config::detail {
namespace {

bool is_json_number(const std::string& s) {
  std::size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  if (i >= s.size()) return false;
  if (s[i] == '0') ++i;
  else if (s[i] >= '1' && s[i] <= '9') while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  else return false;
  if (i < s.size() && s[i] == '.') {
    const auto start = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    const auto start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return false;
  }
  return i == s.size();
}

void write_string(std::string& out, const std::string& s) {
  out += '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", u);
      out += escaped;
    } else {
      out += c;
    }
  }
  out += '"';
}

void write(std::string& out, const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      out += '{';
      bool first = true;
      for (const auto& kv : node) {
        if (!first) out += ',';
        first = false;
        write_string(out, kv.first.Scalar());
        out += ':';
        write(out, kv.second);
      }
      out += '}';
      return;
    }
    case YAML::NodeType::Sequence: {
      out += '[';
      bool first = true;
      for (const auto& item : node) {
        if (!first) out += ',';
        first = false;
        write(out, item);
      }
      out += ']';
      return;
    }
    case YAML::NodeType::Scalar: {
      // A plain scalar the loader may read as a whole number or a boolean must stay one (quoted, it
      // would be refused): canonical form, so that what is stored loads back the same.
      const auto& s = node.Scalar();
      const bool plain = node.Tag() == "?";
      bool flag = false;
      if (plain && !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        const auto first = s.find_first_not_of('0');
        out += first == std::string::npos ? std::string("0") : s.substr(first);
      } else if (plain && (is_json_number(s) || s == "null")) {
        out += s;
      } else if (plain && YAML::convert<bool>::decode(node, flag)) {
        out += flag ? "true" : "false";
      } else {
        write_string(out, s);
      }
      return;
    }
    default:
      out += "null";
  }
}

}  // namespace

std::string to_json(const YAML::Node& node) {
  std::string out;
  write(out, node);
  return out;
}

}  // namespace frontdoor::config::detail
