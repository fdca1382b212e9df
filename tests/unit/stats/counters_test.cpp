// The counters table is the one declaration: the JSON line carries every field it lists, and
// docs/metrics.md names every field and Prometheus family.
#include "frontdoor/stats/counters.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "frontdoor/server/metrics.hpp"

namespace frontdoor::stats {
namespace {

// Where `path` ("a", "a.b", "list[].b") stands in `json`: its last part as a key after its group's.
bool json_has(const std::string& json, std::string_view path) {
  std::size_t from = 0;
  const auto dot = path.find('.');
  if (dot != std::string_view::npos) {
    std::string group(path.substr(0, dot));
    const bool list = group.ends_with("[]");
    if (list) group.resize(group.size() - 2);
    from = json.find("\"" + group + "\":" + (list ? "[" : "{"));
    if (from == std::string::npos) return false;
    path.remove_prefix(dot + 1);
  }
  return json.find("\"" + std::string(path) + "\":", from) != std::string::npos;
}

server::Metrics one_of_each() {
  server::Metrics m;
  m.rate_limits.push_back({"everyone", "", 1, 2});
  m.endpoints.push_back({"127.0.0.1:1", 1, 2, 3, 4, 5});
  m.manifests.push_back({"a/b/c", 1, 2, 3, 4, 5});
  return m;
}

TEST(Counters, JsonLineCarriesEveryDeclaredField) {
  const std::string json = one_of_each().to_json();
  for (const auto& c : kWorkerCounters) EXPECT_TRUE(json_has(json, c.metric.json)) << c.metric.json << " in " << json;
  for (const auto& m : kMetrics) EXPECT_TRUE(json_has(json, m.json)) << m.json << " in " << json;
}

TEST(Counters, JsonLineNamesNothingUndeclared) {
  // A field written by to_json but absent from the tables would escape the docs check.
  EXPECT_FALSE(json_has(one_of_each().to_json(), "not_declared"));
  std::size_t declared = kWorkerCounters.size() + kMetrics.size();
  EXPECT_EQ(declared, 54u) << "a figure was added: list it in docs/metrics.md and update this count";
}

TEST(Counters, SumAcrossWorkers) {
  WorkerCounters a, b;
  ++a[Counter::requests];
  b[Counter::requests] += 2;
  b[Counter::bytes_to_clients] = 7;
  b.errors[static_cast<std::size_t>(Error::no_manifest)] = 1;
  a += b;
  EXPECT_EQ(a[Counter::requests], 3u);
  EXPECT_EQ(a[Counter::bytes_to_clients], 7u);
  EXPECT_EQ(a.errors[static_cast<std::size_t>(Error::no_manifest)], 1u);
}

TEST(Counters, DocsListEveryFieldAndName) {
  std::ifstream file(FRONTDOOR_SOURCE_DIR "/docs/metrics.md");
  ASSERT_TRUE(file) << "docs/metrics.md not found";
  std::stringstream buffer;
  buffer << file.rdbuf();
  const std::string docs = buffer.str();
  const auto check = [&](const MetricSpec& m) {
    EXPECT_NE(docs.find("`" + std::string(m.json) + "`"), std::string::npos)
        << "docs/metrics.md does not list the JSON field `" << m.json << "`";
    EXPECT_NE(docs.find("`" + std::string(m.prometheus)), std::string::npos)
        << "docs/metrics.md does not list the Prometheus family `" << m.prometheus << "` (" << m.json << ")";
  };
  for (const auto& c : kWorkerCounters) check(c.metric);
  for (const auto& m : kMetrics) check(m);
}

}  // namespace
}  // namespace frontdoor::stats
