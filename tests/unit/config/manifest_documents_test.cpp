#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "frontdoor/config/loader.hpp"

namespace frontdoor::config {
namespace {

using Strings = std::vector<std::string>;

Strings errors_of(const ManifestsResult& r) {
  Strings out;
  for (const auto& e : r.errors) out.push_back(e.to_string());
  return out;
}

Config base() {
  auto loaded = load_config_string("listeners:\n  - address: 127.0.0.1:0\n", "frontdoor.yaml");
  EXPECT_TRUE(loaded.config);
  return *loaded.config;
}

TEST(ManifestDocuments, AStoredJsonDocumentIsOneManifest) {
  const auto r = load_manifests_string(
      R"({"project":"shop","module":"cart","environment":"prod","endpoints":[{"address":"10.0.0.1:80","weight":3}],"balancing":"weighted"})",
      "postgres:shop/cart/prod", base(), ManifestsForm::one);
  ASSERT_EQ(errors_of(r), Strings{});
  ASSERT_EQ(r.manifests.size(), 1u);
  EXPECT_EQ(r.manifests[0].project, "shop");
  EXPECT_EQ(r.manifests[0].endpoints[0].weight, 3u);
  EXPECT_EQ(r.manifests[0].balancing, "weighted");
  // The resilience the manifest does not name is the top level's.
  EXPECT_FALSE(r.manifests[0].resilience);
}

TEST(ManifestDocuments, ErrorsPointIntoTheDocumentByTheDaemonsRules) {
  const auto r = load_manifests_string(
      "{\"project\":\"shop\",\"module\":\"cart\",\n\"endpoints\":[{\"address\":\"nowhere\"}],\"balancing\":\"fastest\"}",
      "doc", base(), ManifestsForm::one);
  ASSERT_EQ(r.errors.size(), 2u) << errors_of(r)[0];
  EXPECT_TRUE(r.manifests.empty());
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_NE(r.errors[0].message.find("endpoints[0].address: \"nowhere\" is not host:port"), std::string::npos)
      << r.errors[0].message;
  EXPECT_NE(r.errors[1].message.find("balancing: \"fastest\" is not a balancing policy"), std::string::npos);
}

TEST(ManifestDocuments, AFileForPutIsAManifestsListAndBecomesJson) {
  const auto r = load_manifests_string(
      "manifests:\n"
      "  - project: shop\n"
      "    module: cart\n"
      "    endpoints: [10.0.0.1:80, {address: 10.0.0.2:80, weight: 2}]\n"
      "    strip_path_prefix: true\n"
      "    sticky_cookie: \"007\"\n"
      "  - project: shop\n"
      "    module: \"*\"\n"
      "    endpoints: [10.0.0.3:80]\n",
      "put.yaml", base(), ManifestsForm::list);
  ASSERT_EQ(errors_of(r), Strings{});
  ASSERT_EQ(r.documents.size(), 2u);
  EXPECT_EQ(r.documents[0],
            R"({"project":"shop","module":"cart","endpoints":["10.0.0.1:80",{"address":"10.0.0.2:80","weight":2}],)"
            R"("strip_path_prefix":true,"sticky_cookie":"007"})");
  // What is stored loads back as the same manifest.
  const auto again = load_manifests_string(r.documents[0], "stored", base(), ManifestsForm::one);
  ASSERT_EQ(errors_of(again), Strings{});
  EXPECT_EQ(again.manifests[0], r.manifests[0]);
}

TEST(ManifestDocuments, NothingIsAcceptedWhenAnyManifestIsWrong) {
  const auto r = load_manifests_string(
      "manifests:\n"
      "  - {project: a, module: b, endpoints: [10.0.0.1:80]}\n"
      "  - {project: a, module: b, endpoints: [10.0.0.1:80]}\n"
      "  - {project: a, module: c, endpoints: [], colour: red}\n",
      "put.yaml", base(), ManifestsForm::list);
  EXPECT_TRUE(r.manifests.empty());
  EXPECT_TRUE(r.documents.empty());
  const auto errors = errors_of(r);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_NE(errors[0].find("put.yaml:3:"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("is already defined by manifests[0]"), std::string::npos);
  EXPECT_NE(errors[1].find("put.yaml:4:"), std::string::npos) << errors[1];
}

TEST(ManifestDocuments, BadTextAndWrongShapesAreErrorsNotCrashes) {
  for (const char* text : {"", "{", "[1,2]", "manifests: 3", "null", "\"just text\"", "manifests: []",
                           "{\"project\": {\"a\": 1}}", "---\na: 1\n---\nb: 2\n"}) {
    for (auto form : {ManifestsForm::one, ManifestsForm::list}) {
      const auto r = load_manifests_string(text, "x", base(), form);
      EXPECT_FALSE(r.errors.empty()) << text;
      EXPECT_TRUE(r.manifests.empty()) << text;
    }
  }
}

TEST(ManifestDocuments, GlobalLimitsNeedTheBasesRedis) {
  const auto r = load_manifests_string(
      R"({"project":"a","module":"b","endpoints":["10.0.0.1:80"],"rate_limits":[{"name":"g","requests_per_second":5,"scope":"global"}]})",
      "doc", base(), ManifestsForm::one);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].message.find("scope: global needs the redis section"), std::string::npos)
      << r.errors[0].message;
}

}  // namespace
}  // namespace frontdoor::config
